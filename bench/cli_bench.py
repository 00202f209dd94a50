"""CLI start-up: wall time of `newsletter --version`, `--help` and a no-op `archive build`.

    python bench/cli_bench.py [--runs 9] [--issues 500] [--source DIR] [--against DIR]

Runs the installed console script (the venv's bin/newsletter) as a user would, each command
`--runs` times after one warm-up run, and prints the median and best wall time and the median
CPU time (user + sys, less disturbed than wall time when other processes share the cores),
next to `python -c pass`, the floor any Python command pays. The no-op archive build runs in
a workspace of ISSUES sent issues x 3 languages (bench/archive_bench.py's data) built once
before timing, so nothing has changed. Targets: --version and --help <= 0.3 s, no-op archive
build <= 1 s in all. `--source /work/main` times another checkout's code, to compare;
`--against /work/main` times both, each command's runs alternated between the two checkouts in
the same workspace (one yardstick for a loaded machine), and prints the CPU ratio.
Byte-code is cached as on a user's machine (PYTHONDONTWRITEBYTECODE is dropped), in a
temporary PYTHONPYCACHEPREFIX so that no checkout is written to; the warm-up run fills it.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_bench  # noqa: E402  (the sent-issues generator of the archive bench)

TARGETS = {"--version": 0.3, "--help": 0.3, "archive build (no-op)": 1.0}


def _environment(source: str | None, pycache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("NEWSLETTER_")}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if source:
        env["PYTHONPATH"] = str(Path(source).resolve())
    return env


def _once(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of argv."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _timed(label: str, argv: list[str], cwd: Path, envs: dict[str, dict[str, str]],
           runs: int) -> None:
    """Time argv under each environment (each code), their runs alternated."""
    for env in envs.values():
        _once(argv, cwd, env)  # warm-up: byte-code written, files in the page cache
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in envs}
    for _ in range(runs):
        for name, env in envs.items():
            times[name].append(_once(argv, cwd, env))
    target = TARGETS.get(label)
    cpu = {}
    for name, pairs in times.items():
        walls, cpus = zip(*pairs, strict=True)
        median, cpu[name] = statistics.median(walls), statistics.median(cpus)
        verdict = "" if target is None else f"  target <= {target:.1f} s: " + (
            "met" if median <= target else "NOT met")
        shown = label if len(envs) == 1 else f"{label} [{name}]"
        print(f"{shown:<24} median {median:5.3f} s  best {min(walls):5.3f} s  "
              f"cpu {cpu[name]:5.3f} s{verdict}", flush=True)
    if len(cpu) == 2:
        ours, theirs = cpu.values()
        print(f"{label:<24} cpu ratio {ours / theirs:4.2f} (first code / second)", flush=True)


def _workspace(folder: Path, issues: int, script: Path, env: dict[str, str]) -> Path:
    ws = folder / "ws"
    ws.mkdir()
    url = f"sqlite:///{ws / 'newsletter.db'}"
    (ws / "newsletter.toml").write_text(
        f'[newsletter]\nname = "Network News"\nbase_url = "https://news.example.org"\n'
        f'[database]\nurl = "{url}"\n', encoding="utf-8")
    archive_bench.populate(url, issues)
    subprocess.run([str(script), "archive", "build"], cwd=ws, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--issues", type=int, default=500)
    parser.add_argument("--source", help="Checkout whose newsletter package to time.")
    parser.add_argument("--against", help="A second checkout, timed in alternation.")
    args = parser.parse_args()
    script = Path(sys.executable).with_name("newsletter")
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores; "
          f"code: {args.source or 'installed'}{' against ' + args.against if args.against else ''}"
          f"; {args.runs} runs each", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        envs = {args.source or "installed": _environment(args.source, here / "pycache")}
        if args.against:
            envs[args.against] = _environment(args.against, here / "pycache-against")
        plain = dict(list(envs.items())[:1])
        _timed("python -c pass", [sys.executable, "-c", "pass"], here, plain, args.runs)
        _timed("--version", [str(script), "--version"], here, envs, args.runs)
        _timed("--help", [str(script), "--help"], here, envs, args.runs)
        ws = _workspace(here, args.issues, script, next(iter(envs.values())))
        _timed("archive build (no-op)", [str(script), "archive", "build"], ws, envs, args.runs)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
