"""The editor's month, as the README's tutorial tells it, on a new workspace with no manual step.

Copy last month's issue, write the three languages, check, test-send, import subscribers from a
French-headed CSV, send. Then every reader has their own language, and every picture of every
message answers from `newsletter serve` without any metadata.
"""

from __future__ import annotations

import io
import json
import re
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from tests.delivery.test_publish import SLUG, Public, public  # noqa: F401  (fixture)

README = Path(__file__).resolve().parents[2] / "README.md"
NEW = "2026-12-update"
SUBJECTS = {
    "en": "December: the regional review, and who signed",
    "fr": "Décembre : l’examen régional, et qui a signé",
    "es": "Diciembre: la revisión regional y quién firmó",
}
CSV = (
    "Courriel;Nom;Langue\n"
    "amina@example.org;Amina Diallo;Français\n"
    "jose@example.org;José Pérez;Español\n"
    "kim@example.org;Kim Lee;English\n"
)


def tutorial_commands() -> list[str]:
    """The `newsletter ...` commands of the README's tutorial block, in order."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Tutorial: the editor's month", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].split()[1] + " " + line.split("#", 1)[0].split()[2]
            for line in block.splitlines() if line.startswith("newsletter ")]


def write_language(folder: Path, lang: str) -> None:
    """Step 2: the editor writes this month's subject and text over last month's."""
    path = folder / f"{lang}.md"
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^subject = ".*"$', f'subject = "{SUBJECTS[lang]}"', text)
    path.write_text(text + f"\n\nDecember note ({lang}).\n", encoding="utf-8")


def test_the_readme_tutorial_lists_the_steps_this_test_takes() -> None:
    assert tutorial_commands() == [
        "issue new", "issue translated", "issue translated", "issue check", "send " + NEW,
        "subscribers import", "send " + NEW,
    ]


@pytest.mark.sqlite_only  # the send paths run on both engines elsewhere; this is the walk-through
def test_an_editors_month_from_last_issue_to_every_reader(run, public: Public,  # noqa: F811
                                                           smtp_server) -> None:
    ws = public.workspace
    # 1. Copy last month's issue: number bumped, date cleared, subject still last month's.
    run("issue", "new", NEW, "--from", SLUG)
    folder = ws / "issues" / NEW
    settings = tomllib.loads((folder / "issue.toml").read_text(encoding="utf-8"))
    assert settings["number"] == "12" and "date" not in settings
    asked = json.loads(run("issue", "check", NEW, "--json", ok=False).output)
    assert {f["rule"] for f in asked["findings"]} == {"front-matter"}  # the date, please

    # 2. Write the date and the three languages; mark the translations current.
    with (folder / "issue.toml").open("a", encoding="utf-8") as toml:
        toml.write("date = 2026-12-18\n")
    warned = run.json("issue", "check", NEW)
    assert {f["rule"] for f in warned["findings"]} == {"subject-unchanged"}
    for lang in ("en", "fr", "es"):
        write_language(folder, lang)
    run("issue", "translated", NEW, "--lang", "fr")
    run("issue", "translated", NEW, "--lang", "es")

    # 3. Check: no error, no stale translation, no unchanged subject.
    checked = run.json("issue", "check", NEW)
    assert checked["ok"] and checked["findings"] == [], checked["findings"]

    # 4. Test copies, every language, marked as such.
    run("send", NEW, "--test-to", "editor@example.org", "--publish-check")
    assert smtp_server.wait_for(3)
    tests = {m["Subject"] for m in smtp_server.parsed()}
    assert tests == {"[TEST] " + s for s in SUBJECTS.values()}
    smtp_server.messages.clear()

    # 5. Subscribers from a French-headed CSV, then the real send.
    csv = ws / "subscribers" / "membres.csv"
    csv.write_text(CSV, encoding="utf-8")
    imported = run.json("subscribers", "import", str(csv), "--list", "news", "--confirmed",
                        "--consent-source", "AG 2026")
    assert imported["languages"] == {"fr": 1, "es": 1, "en": 1}
    run("send", NEW, "--yes", "--publish-check")
    assert smtp_server.wait_for(6)  # the three imported and the list's three readers
    messages = {m["To"].addresses[0].addr_spec: m for m in smtp_server.parsed()}
    assert messages["amina@example.org"]["Subject"] == SUBJECTS["fr"]
    assert messages["jose@example.org"]["Subject"] == SUBJECTS["es"]
    assert messages["kim@example.org"]["Subject"] == SUBJECTS["en"]
    assert messages["amina@example.org"]["To"].addresses[0].display_name == "Amina Diallo"

    # Every picture answers from `newsletter serve`, carrying no metadata.
    for message in messages.values():
        html = message.get_body(("html",)).get_content()
        sources = re.findall(r'<img[^>]+src="([^"]+)"', html)
        assert sources
        for src in sources:
            status, _, body = public.get(src.removeprefix(public.base))
            assert status == 200, src
            picture = Image.open(io.BytesIO(body))
            assert not picture.getexif() and "exif" not in picture.info, src
    status = json.loads(run("issue", "status", NEW, "--json").output)
    assert status["status"] == "sent"
