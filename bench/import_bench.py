"""Import benchmark: N subscribers in a CSV file, imported as a user would, then re-imported.

Usage: python bench/import_bench.py [N] [--postgres URL]
  N defaults to 1,000,000. Targets: the import <= 30 s, the re-import of the unchanged file
  <= 15 s, peak RSS <= 200 MB. With --postgres (a server URL such as
  postgresql://postgres@127.0.0.1:5432/test) a fresh database is created next to the given one,
  used, and dropped; otherwise a fresh SQLite workspace is used.

Each import is `newsletter subscribers import` in its own process, timed from its start to its
exit (interpreter start-up included), with its own CPU time and peak RSS. The machine is
shared, so the run also prints the load average and times `sqlite3 .import` of the same file:
compare a figure with the yardstick measured next to it.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LANGS = ("en", "fr", "es")
NAMES = ("Amina Diallo", "Carlos Méndez", "Sarah Okafor", "Jean-Pierre Martin", "Lucía Fernández",
         "Priya Raman", "Nour Haddad", "Mateo Rojas")


def generate(path: Path, n: int) -> None:
    rng = random.Random(7)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("email,name,language,organisation\n")
        for i in range(n):
            name = rng.choice(NAMES)
            fh.write(f"person{i}@org{i % 997}.example.org,{name},{LANGS[i % 3]},Org {i % 300}\n")


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one command; its output is shown only if it fails."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            out.seek(0)
            sys.exit(f"{' '.join(args[1:])} failed:\n{out.read().decode(errors='replace')}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def yardstick(csv_path: Path, tmp: Path) -> str:
    """`sqlite3 .import` of the same file into a new table: the machine's pace right now."""
    if not shutil.which("sqlite3"):
        return "sqlite3 .import: (sqlite3 not installed)"
    db = tmp / "yardstick.db"
    t0 = time.perf_counter()
    subprocess.run(["sqlite3", str(db), ".mode csv", f".import {csv_path} t"], check=True)
    elapsed = time.perf_counter() - t0
    db.unlink()
    return f"yardstick `sqlite3 .import` of the same file: {elapsed:.1f} s"


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A new PostgreSQL database on the server of `server_url`, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from newsletter.db.engine import normalize_url

    url = make_url(normalize_url(server_url))
    name = f"bench_import_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def bench(n: int, tmp: Path, env: dict[str, str], engine: str) -> None:
    exe = str(Path(sys.executable).with_name("newsletter"))
    ws, csv_path = tmp / "ws", tmp / "subs.csv"
    t0 = time.perf_counter()
    generate(csv_path, n)
    print(f"generated {n:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) in "
          f"{time.perf_counter() - t0:.1f} s; engine {engine}; {load()}")
    subprocess.run([exe, "init", str(ws)], check=True, capture_output=True, env=env)
    print(yardstick(csv_path, tmp))
    first = [exe, "-w", str(ws), "subscribers", "import", str(csv_path), "--list", "news"]
    for label, args, target in (
        ("import", [*first, "--confirmed", "--consent-source", "bench"], 30),
        ("re-import, unchanged", first, 15),
    ):
        elapsed, cpu, rss = run(args, env)
        print(f"{label}: {n:,} rows in {elapsed:.1f} s = {n / elapsed:,.0f} rows/s (CPU "
              f"{cpu:.1f} s); peak RSS {rss:.0f} MB (targets: <= {target} s, <= 200 MB); "
              f"{load()}")
    print(yardstick(csv_path, tmp))


def main() -> None:
    ap = argparse.ArgumentParser(description="Import N rows, then re-import the same file.")
    ap.add_argument("rows", nargs="?", type=int, default=1_000_000)
    ap.add_argument("--postgres", default="", metavar="ADMIN_URL",
                    help="run on a scratch PostgreSQL database made through this server URL")
    args = ap.parse_args()
    n, postgres = args.rows, args.postgres
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if not postgres:
            bench(n, tmp, dict(os.environ), "sqlite")
            return
        with postgres_database(postgres) as url:
            bench(n, tmp, {**os.environ, "NEWSLETTER_DATABASE_URL": url}, "postgresql")


if __name__ == "__main__":
    main()
