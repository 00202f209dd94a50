"""Composer benchmark: compile per language (ms) and slot filling per recipient (µs).

Run: .venv/bin/python bench/compose_bench.py
Uses the example issue (about 20-25 KB of HTML per language) in a temporary workspace.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from newsletter.compose import Slots, compile_issue, load_issue
from newsletter.config import load_settings

REPO = Path(__file__).resolve().parents[1]
SLUG = "2026-11-coalition-update"
CONFIG = """[newsletter]
name = "Coalition News"
organisation = "Civil Society Coalition on Migration"
postal_address = "Rue de l'Exemple 1, 1202 Geneva, Switzerland"
base_url = "https://news.example.org"
secret_key = "bench"
"""


def best_ms(run, repeat: int = 30) -> tuple[float, float]:
    """Median and best wall time of `run` in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        shutil.copytree(REPO / "issues" / SLUG, ws / "issues" / SLUG)
        (ws / "newsletter.toml").write_text(CONFIG, encoding="utf-8")
        settings = load_settings(ws, environ={})
        source = load_issue(ws, SLUG)
        print(f"{'lang':<5} {'html KB':>8} {'text KB':>8} {'compile ms (median/best)':>26} "
              f"{'fill µs/recipient (median of 5)':>32}")
        for lang in source.languages:
            compile_issue(source, lang, settings)  # warm caches (templates, catalogs)
            median, best = best_ms(lambda lang=lang: compile_issue(source, lang, settings))
            edition = compile_issue(source, lang, settings)
            recipients = [
                Slots(name=f"Subscriber {i} <x>", unsubscribe_url=f"https://news.example.org/"
                      f"unsubscribe/MTIzNDo1.{i:022d}", preferences_url=f"https://news."
                      f"example.org/preferences/MTIzNDo1.{i:022d}")
                for i in range(10_000)
            ]
            runs = []
            for _ in range(5):
                start = time.perf_counter()
                for slots in recipients:
                    edition.fill(slots)
                runs.append((time.perf_counter() - start) / len(recipients) * 1e6)
            html, text = edition.fill(recipients[0])
            print(f"{lang:<5} {len(html.encode()) / 1024:>8.1f} {len(text.encode()) / 1024:>8.1f} "
                  f"{median:>17.2f} / {best:.2f} {statistics.median(runs):>32.2f}")


if __name__ == "__main__":
    main()
