"""The month's routine without a database: `issue new --from`, the old-subject warning."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli.main import cli
from tests.compose.conftest import EXAMPLE


def _cli(compose_ws: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["-w", str(compose_ws), *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _json(compose_ws: Path, *args: str) -> dict:
    code, output = _cli(compose_ws, *args, "--json")
    return {"exit": code, **json.loads(output)}


def _front(path: Path) -> dict:
    return tomllib.loads(path.read_text("utf-8").split("+++")[1])


def test_new_from_last_copies_files_images_and_settings_bumps_number_clears_date(
        compose_ws: Path) -> None:
    data = _json(compose_ws, "issue", "new", "2026-12-update", "--from", EXAMPLE)
    new = compose_ws / "issues" / "2026-12-update"
    assert data["exit"] == 0 and data["number"] == ["11", "12"]
    assert sorted(data["files"]) == sorted(
        f"issues/2026-12-update/{n}" for n in
        ("issue.toml", "en.md", "fr.md", "es.md", "regional-meeting.png"))
    settings = tomllib.loads((new / "issue.toml").read_text("utf-8"))
    assert settings == {"list": "news", "volume": 9, "number": "12", "copied_from": EXAMPLE}
    old = compose_ws / "issues" / EXAMPLE
    image = "regional-meeting.png"
    assert (new / image).read_bytes() == (old / image).read_bytes()
    assert (new / "fr.md").read_text("utf-8") == (old / "fr.md").read_text("utf-8")
    assert (new / "issue.toml").read_text("utf-8").startswith("# Shared by every language")


def test_the_copy_asks_for_a_date_and_warns_while_the_subject_is_the_old_one(
        compose_ws: Path) -> None:
    _cli(compose_ws, "issue", "new", "2026-12-update", "--from", EXAMPLE)
    data = _json(compose_ws, "issue", "check", "2026-12-update")
    found = {(f["rule"], f["file"]) for f in data["findings"]}
    assert data["exit"] == 1
    assert ("front-matter", "issues/2026-12-update/en.md") in found  # no date yet
    toml = compose_ws / "issues" / "2026-12-update" / "issue.toml"
    toml.write_text(toml.read_text("utf-8") + "date = 2026-12-18\n", "utf-8")
    data = _json(compose_ws, "issue", "check", "2026-12-update")
    unchanged = sorted(f["file"] for f in data["findings"] if f["rule"] == "subject-unchanged")
    assert data["exit"] == 0
    assert unchanged == [f"issues/2026-12-update/{lang}.md" for lang in ("en", "es", "fr")]
    fr = compose_ws / "issues" / "2026-12-update" / "fr.md"
    fr.write_text(fr.read_text("utf-8").replace("Signez d’ici au 31 janvier",
                                                "Rendez-vous le 18 décembre"), "utf-8")
    data = _json(compose_ws, "issue", "check", "2026-12-update")
    unchanged = sorted(f["file"] for f in data["findings"] if f["rule"] == "subject-unchanged")
    assert unchanged == [f"issues/2026-12-update/{lang}.md" for lang in ("en", "es")]


def test_a_number_set_in_a_language_file_is_bumped_there_keeping_its_padding(
        make_issue, compose_ws: Path) -> None:
    make_issue("last", files={"en.md": '+++\nsubject = "Old news for everyone"\nnumber = "09"\n'
                              'date = 2026-11-02\n+++\n\nBody\n'})
    data = _json(compose_ws, "issue", "new", "next", "--from", "last")
    assert data["number"] == ["09", "10"]
    assert _front(compose_ws / "issues" / "next" / "en.md") == {
        "subject": "Old news for everyone", "number": "10"}


def test_new_from_refuses_bad_slugs_missing_sources_and_existing_folders(
        compose_ws: Path) -> None:
    code, out = _cli(compose_ws, "issue", "new", "Bad Slug", "--from", EXAMPLE)
    assert code == 1 and "invalid issue slug" in out
    code, out = _cli(compose_ws, "issue", "new", "next", "--from", "nothing-here")
    assert code == 1 and "no issue folder issues/nothing-here/" in out
    code, out = _cli(compose_ws, "issue", "new", EXAMPLE, "--from", EXAMPLE)
    assert code == 1 and "already exists" in out
    code, out = _cli(compose_ws, "issue", "new", "next", "--from", EXAMPLE, "--lang", "en")
    assert code == 2 and "drop --lang" in out
    assert not (compose_ws / "issues" / "next").exists()


def test_text_output_says_what_changed(compose_ws: Path) -> None:
    code, out = _cli(compose_ws, "issue", "new", "2026-12-update", "--from", EXAMPLE)
    assert code == 0 and "number 11 -> 12" in out and "date cleared" in out


EN = ("Hello {{ name }},\n\nFirst section.\n\n---\n\n## Second\n\nThe meeting is on Monday.\n\n"
      "---\n\n## Third\n\nSign the statement.\n\n---\n\n## Fourth\n\nSee you soon.\n")
FR = ("Bonjour {{ name }},\n\nPremière section.\n\n---\n\n## Deux\n\nLa réunion est lundi.\n\n"
      "---\n\n## Trois\n\nSignez.\n\n---\n\n## Quatre\n\nÀ bientôt.\n")


def _stale(compose_ws: Path, slug: str = "broken") -> list[tuple[str, int | None, str]]:
    data = _json(compose_ws, "issue", "check", slug)
    return [(f["file"], f["line"], f["message"]) for f in data["findings"]
            if f["rule"] == "stale-translation"]


def test_a_translation_marked_current_warns_once_the_source_sections_change(
        make_issue, compose_ws: Path) -> None:
    from tests.compose.conftest import edition

    folder = make_issue(files={"en.md": edition(EN), "fr.md": edition(FR)})
    fr_before = (folder / "fr.md").read_text("utf-8")
    data = _json(compose_ws, "issue", "translated", "broken", "--lang", "fr", "--source", "en")
    assert data == {"exit": 0, "slug": "broken", "language": "fr", "source": "en",
                    "file": "issues/broken/fr.md"}
    fr_after = (folder / "fr.md").read_text("utf-8")
    assert fr_after.replace(fr_after.splitlines()[4] + "\n", "", 1) == fr_before  # one line added
    assert _stale(compose_ws) == []
    en = folder / "en.md"
    en.write_text(en.read_text("utf-8").replace("on Monday", "on Tuesday")
                  .replace("See you soon.", "See you in Geneva."), "utf-8")
    assert _stale(compose_ws) == [(
        "issues/broken/fr.md", 5, "sections 2 and 4 changed in en.md since translation: update "
        "fr.md, then run `newsletter issue translated broken --lang fr`")]
    en.write_text(en.read_text("utf-8").replace("soon.", "soon.  \n\n"), "utf-8")  # spacing only
    assert len(_stale(compose_ws)) == 1
    data = _json(compose_ws, "issue", "translated", "broken", "--lang", "fr")  # source recorded
    assert data["source"] == "en" and _stale(compose_ws) == []


def test_a_new_section_in_the_source_is_named(make_issue, compose_ws: Path) -> None:
    from tests.compose.conftest import edition

    folder = make_issue(files={"en.md": edition(EN), "fr.md": edition(FR)})
    _cli(compose_ws, "issue", "translated", "broken", "--lang", "fr", "--source", "en")
    en = folder / "en.md"
    en.write_text(en.read_text("utf-8") + "\n---\n\n## Fifth\n\nOne more thing.\n", "utf-8")
    [(_f, _l, message)] = _stale(compose_ws)
    assert message.startswith("section 5 changed (5 sections now, 4 then) in en.md")


def test_translated_refuses_unknown_languages_in_one_line(make_issue, compose_ws: Path) -> None:
    from tests.compose.conftest import edition

    make_issue(files={"en.md": edition(EN), "fr.md": edition(FR)})
    code, out = _cli(compose_ws, "issue", "translated", "broken", "--lang", "de")
    assert code == 1 and "has no de.md" in out
    code, out = _cli(compose_ws, "issue", "translated", "broken", "--lang", "fr", "--source", "es")
    assert code == 1 and "has no es.md to translate from" in out


def test_a_malformed_record_is_a_warning_that_says_how_to_rewrite_it(
        make_issue, compose_ws: Path) -> None:
    from tests.compose.conftest import edition

    make_issue(files={"en.md": edition(EN),
                      "fr.md": edition(FR, extra='translated_from = { source = "en" }\n')})
    [(_f, line, message)] = _stale(compose_ws)
    assert line == 5 and "issue translated broken --lang fr" in message
