"""A statement written into a test workspace, in the languages asked for."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

TITLES = {"en": "A New Deal for refugees, migrants and societies",
          "fr": "Un New Deal pour les réfugiés, les migrants et les sociétés",
          "es": "Un Nuevo Pacto para refugiados, migrantes y sociedades"}
BODIES = {"en": "We, the **undersigned** organisations, call on states to act now.",
          "fr": "Nous, organisations **signataires**, appelons les États à agir.",
          "es": "Nosotras, las organizaciones **firmantes**, pedimos a los Estados actuar."}


def write_statement(workspace: Path, slug: str = "new-deal", *, opens: dt.date | None = None,
                    closes: dt.date | None = None, extra: str = "",
                    languages: tuple[str, ...] = ("en", "fr", "es")) -> Path:
    """statements/<slug>/<lang>.md, open from yesterday to next month unless told."""
    today = dt.datetime.now(dt.UTC).date()
    opens = opens or today - dt.timedelta(days=1)
    closes = closes or today + dt.timedelta(days=30)
    folder = workspace / "statements" / slug
    folder.mkdir(parents=True, exist_ok=True)
    for lang in languages:
        (folder / f"{lang}.md").write_text(
            f'+++\ntitle = "{TITLES[lang]}"\nopens = {opens}\ncloses = {closes}\n{extra}+++\n'
            f"{BODIES[lang]}\n", encoding="utf-8")
    return folder
