"""Start-up of `newsletter send`: instructions and CPU time of a tiny send (SQLite, one worker).

    .venv/bin/python bench/startup_bench.py [--count 10] [--runs 3] [--cpu 0] [--tree PATH]
        [--keep DIR] [--profile]

The fixed cost of a send (imports, configuration, compiling the issue, the pre-send checks,
opening the database, closing down) counts in every send, whatever its size. Each run seeds a
fresh SQLite workspace of COUNT subscribers (send_bench.py's workspace and seeding), starts
smtp-sink and runs `python -m newsletter send bench --yes --json --workers 1 --connections 16`
under callgrind (instr_bench.py's `one_send`, PYTHONHASHSEED=0, bytecode compiled first), and
prints each run's instruction count and their median. --cpu N also runs the same send N times
outside valgrind and prints user + system CPU seconds of each (noisy on a shared machine; the
instruction count is the figure to compare). Every send starts with an empty template cache
(XDG_CACHE_HOME in its own folder), as a workspace's first command does. --tree PATH
measures another checkout, e.g. a worktree of main; --profile writes a cProfile of one send
(with --keep, into that folder).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instr_bench import one_send, prepare, send_args, sink_on  # noqa: E402


def cpu_send(count: int, args: argparse.Namespace, tmp: Path) -> float:
    """User + system CPU seconds of one send of `count` messages outside valgrind."""
    base = tmp / f"cpu{count}"
    shutil.rmtree(base, ignore_errors=True)
    ws, port, env = prepare(count, args, base)
    with sink_on(port):
        send = subprocess.Popen([sys.executable, *send_args(ws, args)], env=env, cwd=tmp,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(send.pid, 0)
        send.returncode = os.waitstatus_to_exitcode(status)
    if send.returncode != 0:
        raise SystemExit(f"send failed ({send.returncode})")
    return usage.ru_utime + usage.ru_stime


def _empty_template_cache(tmp: Path) -> None:
    """The next send compiles its templates (compose/layout.py keeps them in XDG_CACHE_HOME)."""
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="cache-", dir=tmp)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3, help="callgrind runs")
    ap.add_argument("--cpu", type=int, default=0, help="CPU-timed runs outside valgrind")
    ap.add_argument("--tree", help="checkout whose `newsletter` package is measured")
    ap.add_argument("--keep", help="folder to keep the callgrind or cProfile files in")
    ap.add_argument("--profile", action="store_true", help="cProfile one send instead")
    args = ap.parse_args()
    args.sections, args.connections, args.dry_run = 12, 16, False
    package = Path(args.tree or Path(__file__).resolve().parents[1]) / "newsletter"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True,
                   stdout=subprocess.DEVNULL)
    tmp = Path(tempfile.mkdtemp(prefix="nl-startup-"))
    try:
        if args.profile:
            one_send(args.count, args, tmp)
            return
        counts = []
        for run in range(args.runs):
            _empty_template_cache(tmp)
            counts.append(one_send(args.count, args, tmp / str(run)))
            print(f"run {run}: {counts[-1]:,} instructions", flush=True)
        if counts:
            print(f"median: {statistics.median(counts):,.0f} instructions "
                  f"({args.count} messages)")
        cpu = []
        for _ in range(args.cpu):
            _empty_template_cache(tmp)
            cpu.append(cpu_send(args.count, args, tmp))
        if cpu:
            print("CPU s: " + " ".join(f"{c:.2f}" for c in cpu)
                  + f"; median {statistics.median(cpu):.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
