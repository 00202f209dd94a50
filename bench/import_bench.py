"""Import benchmark: generate N subscribers as CSV, import into SQLite, print rows/s and RSS.

Usage: python bench/import_bench.py [N]   (default 1,000,000; targets: <= 60 s, <= 200 MB)
The import runs as `newsletter subscribers import` in a child process, so the RSS is its own.
"""

from __future__ import annotations

import random
import resource
import subprocess
import sys
import tempfile
import time
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


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    exe = str(Path(sys.executable).with_name("newsletter"))
    with tempfile.TemporaryDirectory() as tmp:
        ws, csv_path = Path(tmp) / "ws", Path(tmp) / "subs.csv"
        t0 = time.perf_counter()
        generate(csv_path, n)
        print(f"generated {n:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) "
              f"in {time.perf_counter() - t0:.1f} s")
        subprocess.run([exe, "init", str(ws)], check=True, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run([exe, "-w", str(ws), "subscribers", "import", str(csv_path), "--list",
                        "news", "--confirmed", "--consent-source", "bench"], check=True)
        elapsed = time.perf_counter() - t0
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"import: {n:,} rows in {elapsed:.1f} s = {n / elapsed:,.0f} rows/s; "
              f"peak RSS {rss_mb:.0f} MB (targets: <= 60 s, <= 200 MB)")
        t0 = time.perf_counter()
        subprocess.run([exe, "-w", str(ws), "subscribers", "import", str(csv_path), "--list",
                        "news"], check=True, capture_output=True)
        print(f"re-import (no changes): {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
