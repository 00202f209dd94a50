"""Peak RSS of `newsletter send` (one worker process) at several list sizes.

    .venv/bin/python bench/memory_bench.py 10000 100000 [1000000]

For each size: a fresh SQLite workspace seeded with bulk INSERTs, a ~20 KB issue in three
languages, smtp-sink on loopback, then `newsletter send --workers 1` in a child process whose
peak RSS (ru_maxrss) is read after it exits. Flat means the sender streams the list in batches.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from send_bench import free_port, seed, write_workspace  # noqa: E402


def measure(n: int) -> tuple[float, float, int]:
    """(peak RSS in MB, seconds, messages sent) for one send of n subscribers."""
    tmp = Path(tempfile.mkdtemp(prefix="nl-mem-"))
    try:
        ws = tmp / "ws"
        db_url = f"sqlite:///{tmp}/bench.db"
        port = free_port()
        write_workspace(ws, db_url, port, 8)
        seed(db_url, n)
        sink = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", f"127.0.0.1:{port}",
                                 "1000"])
        time.sleep(0.3)
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "newsletter", "-w", str(ws), "send", "bench", "--yes",
                 "--json", "--workers", "1"], stdout=subprocess.PIPE, text=True)
            out, _ = child.communicate()
        finally:
            sink.terminate()
            sink.wait()
        result = json.loads(out[out.index("{"):])
        # RUSAGE_CHILDREN is a running maximum; sizes run in increasing order, so it is exact
        # for the first and an upper bound of the max for the later ones.
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return peak, result["seconds"], result["sent"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000]
    for n in sizes:
        peak, seconds, sent = measure(n)
        print(f"{n:>9,} subscribers: {sent:,} sent in {seconds:.1f}s, "
              f"peak RSS so far {peak:.0f} MB")


if __name__ == "__main__":
    main()
