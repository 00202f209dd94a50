"""Instructions per message of `newsletter send` (SQLite, unsigned), counted by callgrind.

    .venv/bin/python bench/instr_bench.py [--small 500] [--large 1500] [--sections 12]
        [--connections 16] [--dry-run] [--tree PATH] [--keep DIR] [--profile]

Wall-clock timings on a shared machine swing by a quarter. For each of two list sizes this
seeds a fresh SQLite database (send_bench.py's workspace and seeding), starts smtp-sink on a
free loopback port and runs `python -m newsletter send SLUG --yes --json --workers 1
--connections C` (one worker: in the same process) under `valgrind --tool=callgrind
--trace-children=yes`, with PYTHONHASHSEED=0 and the package's bytecode compiled first. The
sender's instructions per message are (I(large) - I(small)) / (large - small): start-up and
other one-off work cancel out; planning, enqueueing, building, sending and the journal stay.

A real send's count is not repeatable on a loaded machine: how many replies arrive per turn
of the event loop and how many intents one journal commit gathers depend on the CPU share the
process gets (the same code measured 907k to 1,074k instructions per message). --dry-run
measures `send --dry-run` instead: the same messages built from the same database rows,
nothing sent, repeatable to about 1 % (what is left depends on the clock: the Date line is
formatted once per second of the run). Judge a change to the message builder with --dry-run,
two runs each; compare real sends only on an idle machine, or over several runs.

--tree PATH measures another checkout (it goes first on the send's PYTHONPATH), e.g. a
worktree of main, run from a directory outside both (cwd /tmp). --keep DIR keeps the callgrind
files for `callgrind_annotate` (Python frames show as _PyEval_EvalFrameDefault; C functions
such as sha256, base64 or sqlite3 by name). callgrind counts each byte of a `rep movsb` or
`rep stosb` as an instruction, so large copies (memcpy/memset) weigh far more in its counts
than in CPU time; and valgrind has no SHA-NI, so libcrypto's share differs from the hardware's.
--profile runs the large send once under cProfile instead and prints the functions by calls
per message (with --keep, the pstats file is kept too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from send_bench import SMTP_SINK, free_port, seed, write_workspace  # noqa: E402


def callgrind_total(out: Path) -> int:
    """Instructions of every process callgrind followed (sum of each file's totals)."""
    total = 0
    for path in out.glob("callgrind.out.*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("totals:", "summary:")):
                total += int(line.split()[1])
                break
    return total


def send_args(ws: Path, args: argparse.Namespace) -> list[str]:
    if args.dry_run:
        return ["-m", "newsletter", "-w", str(ws), "send", "bench", "--dry-run"]
    return ["-m", "newsletter", "-w", str(ws), "send", "bench", "--yes", "--json",
            "--workers", "1", "--connections", str(args.connections)]


def prepare(count: int, args: argparse.Namespace, base: Path) -> tuple[Path, int, dict[str, str]]:
    """A workspace in base/ws with `count` subscribers: its folder, its SMTP port and the
    send's environment (PYTHONHASHSEED=0, --tree first on PYTHONPATH)."""
    ws = base / "ws"
    port = free_port()
    write_workspace(ws, f"sqlite:///{base}/bench.db", port, args.connections,
                    sections=args.sections)
    seed(f"sqlite:///{base}/bench.db", count)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if args.tree:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.tree,
                                                          env.get("PYTHONPATH")]))
    return ws, port, env


@contextmanager
def sink_on(port: int) -> Iterator[None]:
    """smtp-sink listening on the loopback port while the block runs."""
    sink = subprocess.Popen([SMTP_SINK, "-u", "nobody", f"127.0.0.1:{port}", "1000"])
    try:
        yield
    finally:
        sink.terminate()
        sink.wait()


def one_send(count: int, args: argparse.Namespace, tmp: Path) -> int:
    """Instructions of one send of `count` messages, seeded and sent in folder tmp/count."""
    base = tmp / str(count)
    ws, port, env = prepare(count, args, base)
    out = base / "callgrind"
    out.mkdir()
    if args.profile:
        prefix = [sys.executable, "-m", "cProfile", "-o", str(base / "profile")]
    else:
        prefix = ["valgrind", "--tool=callgrind", "--trace-children=yes",
                  f"--callgrind-out-file={out}/callgrind.out.%p", sys.executable]
    cmd = [*prefix, *send_args(ws, args)]
    with sink_on(port):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
    if done.returncode != 0:
        raise SystemExit(f"send failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    sent = count if args.dry_run else json.loads(done.stdout[done.stdout.index("{"):])["sent"]
    if sent != count:
        raise SystemExit(f"sent {sent} of {count}")
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    if args.profile:
        print_profile(base / "profile", count)
        if args.keep:
            shutil.copy(base / "profile", Path(args.keep) / f"profile.{count}")
        return 0
    if args.keep:
        shutil.copytree(out, Path(args.keep) / str(count), dirs_exist_ok=True)
    return callgrind_total(out)


def print_profile(path: Path, count: int) -> None:
    """Functions by calls per message (the top 40), with their own time."""
    import pstats

    stats = pstats.Stats(str(path))
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][1])[:40]  # type: ignore[attr-defined]
    for (file, line, name), (_cc, calls, tottime, _ct, _callers) in rows:
        print(f"{calls / count:8.2f}/msg {tottime * 1e6 / count:7.1f} µs  "
              f"{Path(file).name}:{line} {name}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=500)
    ap.add_argument("--large", type=int, default=1500)
    ap.add_argument("--sections", type=int, default=12, help="12 make ~38 KB messages")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--tree", help="checkout whose `newsletter` package is measured")
    ap.add_argument("--keep", help="folder to keep the callgrind files in")
    ap.add_argument("--dry-run", action="store_true",
                    help="`send --dry-run`: every message built, none sent (no SMTP, no journal)")
    ap.add_argument("--profile", action="store_true", help="cProfile the large send instead")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nl-instr-"))
    # Bytecode written by the first send would count as start-up of that send only.
    package = Path(args.tree or Path(__file__).resolve().parents[1]) / "newsletter"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        if args.profile:
            one_send(args.large, args, tmp)
            return
        small = one_send(args.small, args, tmp)
        large = one_send(args.large, args, tmp)
        per = (large - small) / (args.large - args.small)
        print(f"instructions: {args.small} messages {small:,}, {args.large} messages "
              f"{large:,}; per message {per:,.0f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
