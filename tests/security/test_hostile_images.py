"""Hostile pictures: `issue check` names each problem in one line; the archive never publishes
an original, a location or a file it cannot read.

Each file in tests/data/hostile/images/ is an accident or an attack an editor may drop beside an
issue: a decompression bomb, a truncated photo, HTML named .jpg, an iPhone HEIC, an SVG with a
script, or a readable picture that carries GPS coordinates where they hide in its format.
"""

from __future__ import annotations

import io
import random
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from newsletter.images import MAX_WIDTH, ImageError, process
from tests.archive.conftest import Builder, Newsroom, build, newsroom, site_files
from tests.conftest import Cli

__all__ = ["build", "newsroom"]  # the archive fixtures, used below

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile" / "images"
FINDING = re.compile(r"issues/hostile/en\.md:\d+: (error|warning) [a-z-]+: \S.*")
EN = ('+++\ntitle = "Coalition news"\nsubject = "Coalition news, November"\n'
      'preheader = "What happened this month in the coalition and beyond"\n+++\n\n'
      "![Members at the border crossing]({name})\n")
# name -> (exit code of `issue check`, text its output must contain)
VERDICTS: dict[str, tuple[int, str]] = {
    "bomb-60000x60000.png": (1, "error image-unreadable: bomb-60000x60000.png is too large "
                                "to open safely"),
    "empty.png": (1, "error image-unreadable: empty.png cannot be read as a picture"),
    "gif-header-then-script.gif": (1, "error image-unreadable: gif-header-then-script.gif "
                                      "cannot be read"),
    "gps-in-png-exif-chunk.png": (0, "0 error(s), 1 warning(s): ok"),
    "gps-in-tiff.tif": (0, "0 error(s), 1 warning(s): ok"),
    "gps-in-webp.webp": (0, "0 error(s), 1 warning(s): ok"),
    "gps-rotated-named-png.png": (0, "0 error(s), 1 warning(s): ok"),
    "html-named-jpg.jpg": (1, "error image-unreadable: html-named-jpg.jpg cannot be read"),
    "iphone-photo.heic": (1, "error image-unreadable: 'iphone-photo.heic' is not a picture "
                             "email clients show"),
    "over-limit-10000x10000.png": (1, "error image-unreadable: over-limit-10000x10000.png is "
                                      "too large to open safely"),
    "script.svg": (0, "warning image-format: 'script.svg' is SVG"),
    "truncated-photo.jpg": (1, "error image-unreadable: truncated-photo.jpg cannot be read"),
}
READABLE = sorted(name for name, (code, _) in VERDICTS.items() if name.startswith("gps-"))


def hostile_issue(tmp_path: Path, name: str) -> Path:
    """A database-less workspace whose issue `hostile` shows the corpus picture `name`."""
    ws = tmp_path / "ws"
    folder = ws / "issues" / "hostile"
    folder.mkdir(parents=True)
    (ws / "newsletter.toml").write_text(
        '[newsletter]\nbase_url = "https://news.example.org"\n'
        'secret_key = "hostile-secret-key-0123456789"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "absent.db"}"\n', encoding="utf-8")
    (folder / "issue.toml").write_text('list = "news"\ndate = 2026-11-20\n', encoding="utf-8")
    (folder / "en.md").write_text(EN.format(name=name), encoding="utf-8")
    shutil.copy(CORPUS / name, folder / name)
    return ws


def assert_private(data: bytes) -> Image.Image:
    """A picture Pillow reads, at most MAX_WIDTH wide, with no EXIF, GPS, XMP or profile."""
    picture = Image.open(io.BytesIO(data))
    picture.load()
    assert picture.width <= MAX_WIDTH
    assert not picture.getexif()
    assert not {"exif", "xmp", "XML:com.adobe.xmp", "icc_profile", "comment"} & set(picture.info)
    assert b"Exif\x00\x00" not in data  # no EXIF block anywhere, whatever the format
    return picture


def test_the_corpus_is_every_file_of_the_folder() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(VERDICTS)


@pytest.mark.parametrize("name", READABLE)
def test_the_readable_corpus_really_carries_gps(name: str) -> None:
    """Else the privacy tests below would prove nothing."""
    assert Image.open(CORPUS / name).getexif().get_ifd(0x8825)


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_issue_check_gives_one_line_findings_and_the_expected_verdict(
        tmp_path: Path, name: str) -> None:
    ws = hostile_issue(tmp_path, name)
    result = Cli(ws)("issue", "check", "hostile", ok=False)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    expected_exit, expected_text = VERDICTS[name]
    assert result.exit_code == expected_exit, result.output
    assert expected_text in result.output
    *findings, _summary = result.output.splitlines()
    for line in findings:
        if "unknown-list" not in line:  # no database here, as on an editor's laptop
            assert FINDING.fullmatch(line) and len(line) < 400, line


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_preview_shows_the_processed_picture_or_none(tmp_path: Path, name: str) -> None:
    ws = hostile_issue(tmp_path, name)
    out = tmp_path / "out"
    Cli(ws)("issue", "preview", "hostile", "--out", str(out))
    if name in READABLE:
        assert_private((out / name).read_bytes())
    else:
        assert not (out / name).exists()


@pytest.mark.sqlite_only
def test_the_archive_publishes_only_processed_pictures(newsroom: Newsroom, build: Builder) -> None:
    for number, name in enumerate(sorted(VERDICTS)):
        slug = f"2026-{number + 1:02d}-hostile"
        newsroom.picture(slug, (CORPUS / name).read_bytes(), name)
        newsroom.issue(slug, image=name, languages=("en",))
    report = build()
    published = {rel: path.read_bytes() for rel, path in site_files(build.out).items()
                 if not rel.endswith((".html", ".xml", ".json", ".txt"))}
    originals = {(CORPUS / name).read_bytes() for name in VERDICTS}
    assert not originals & set(published.values())
    for data in published.values():
        assert_private(data)
    # Each readable picture once, under its name and the one older releases gave it.
    assert len(set(published.values())) == len(READABLE), sorted(published)
    refused = [name for name in VERDICTS if name not in READABLE]
    for name in refused:
        assert any(f"not published: {name}" in warning for warning in report.warnings), name
    assert len(report.warnings) == len(refused)


def test_damaged_pictures_are_cleaned_or_refused_in_one_line_never_a_crash() -> None:
    """300 readable pictures with a few bytes changed, mostly in their headers and EXIF.

    pytest turns warnings into errors here, so Pillow's remarks on damaged metadata would fail
    the test too: the editor must see one line, not a Python warning.
    """
    rng = random.Random(2026)
    sources = [(CORPUS / name).read_bytes() for name in READABLE]
    for _ in range(300):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(min(len(data), 400))] = rng.randrange(256)
        try:
            output, _suffix = process(bytes(data), "damaged.jpg")
        except ImageError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("damaged.jpg ")
            continue
        assert_private(output)
