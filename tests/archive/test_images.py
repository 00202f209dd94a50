"""Pictures as editors have them, through `issue check`, `send` and `archive build`.

The pictures are made with Pillow in each test: a 4000 x 3000 phone photo with GPS coordinates,
one taken sideways (EXIF orientation 6), a logo with transparency, a CMYK print file.
"""

from __future__ import annotations

import io
import random
import re
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from PIL import ExifTags, Image

from newsletter.archive.assets import legacy_name
from newsletter.images import MAX_WIDTH, cache_for, hashed_name, process
from tests.archive.conftest import site_files
from tests.archive.test_after_send import send
from tests.conftest import write_config

NEWSLETTER = str(Path(sys.executable).with_name("newsletter"))
GPS_IFD = 0x8825
ISSUE = "2026-11-on-the-move"
EN = """+++
title = "On the move"
subject = "Pictures from the crossing: a month with the caravan"
preheader = "What the members saw at the border this month, in pictures and in words."
+++

Dear friends,

![Families walking along the road at dawn](crossing.jpg)

![A volunteer hands out water, photographed sideways](sideways.jpg)

![Coalition logo](logo.png)

![The printed leaflet](leaflet.jpg)
"""


def gps_exif(orientation: int = 1) -> bytes:
    """EXIF as a phone writes it: camera, orientation and the position of the people shown."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Phone"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (32.0, 31.0, 4.0),
        ExifTags.GPS.GPSLongitudeRef: "W", ExifTags.GPS.GPSLongitude: (117.0, 1.0, 48.0),
    }
    return exif.tobytes()


def photo(size: tuple[int, int] = (4000, 3000), seed: int = 1, quality: int = 97,
          orientation: int = 1) -> bytes:
    """A photo-like JPEG: smooth light with grain (noise keeps it as heavy as a real photo)."""
    width, height = size
    grain = Image.frombytes("L", size, random.Random(seed).randbytes(width * height))
    light = Image.linear_gradient("L").resize(size)
    picture = Image.merge("RGB", (light, Image.blend(light, grain, 0.35), grain))
    if orientation == 6:  # the camera stores it on its side; red marks the real top
        picture.paste((255, 0, 0), (0, 0, 40, height))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality, exif=gps_exif(orientation))
    return out.getvalue()


def logo() -> bytes:
    """A PNG whose corners are transparent."""
    picture = Image.new("RGBA", (1600, 400), (0, 0, 0, 0))
    picture.paste((20, 90, 160, 255), (200, 50, 1400, 350))
    out = io.BytesIO()
    picture.save(out, "PNG", exif=gps_exif())
    return out.getvalue()


def cmyk() -> bytes:
    """A CMYK JPEG, as exported for print."""
    out = io.BytesIO()
    Image.new("CMYK", (1800, 1200), (0, 255, 255, 0)).save(out, "JPEG", quality=95)
    return out.getvalue()


def write_issue(workspace: Path) -> dict[str, bytes]:
    """The issue folder with its four pictures; returns the originals by file name."""
    folder = workspace / "issues" / ISSUE
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issue.toml").write_text('list = "news"\ndate = 2026-11-20\n', encoding="utf-8")
    (folder / "en.md").write_text(EN, encoding="utf-8")
    originals = {"crossing.jpg": photo(), "sideways.jpg": photo(orientation=6, seed=2),
                 "logo.png": logo(), "leaflet.jpg": cmyk()}
    for name, data in originals.items():
        (folder / name).write_bytes(data)
    return originals


def newsletter(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, in its own process."""
    return subprocess.run([NEWSLETTER, "-w", str(workspace), *args], capture_output=True,
                          text=True, timeout=120)


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.mark.slow
def test_a_phone_photo_goes_out_small_upright_and_without_its_location(
    run, workspace: Path, db_url: str, unused_port: int, tmp_path: Path,
) -> None:
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=unused_port)
    controller.start()
    try:
        write_config(workspace, db_url, f"[smtp]\nport = {unused_port}\n")
        originals = write_issue(workspace)
        run("lists", "add", "news", "--name", "Coalition News", "--languages", "en",
            "--default-language", "en")
        run("subscribers", "add", "amina@example.org", "--list", "news", "--language", "en",
            "--confirmed", "--consent-source", "test")
        checked = newsletter(workspace, "issue", "check", ISSUE)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        send(workspace, ISSUE)
    finally:
        controller.stop()
    built = newsletter(workspace, "archive", "build", "--out", str(tmp_path / "site"))
    assert built.returncode == 0 and not built.stderr, built.stderr

    site = site_files(tmp_path / "site")
    html = message_from_bytes(mailbox.messages[0], policy=policy.default)
    body = html.get_body(("html",)).get_content()  # type: ignore[union-attr]
    sources = re.findall(r'<img[^>]+src="([^"]+)"', body)
    shown = {src.rsplit("/", 1)[-1] for src in sources}
    files = {rel: path.read_bytes() for rel, path in site.items()
             if rel.endswith((".jpg", ".png"))}
    pictures = {rel: data for rel, data in files.items() if Path(rel).name in shown}
    assert len(pictures) == 4, sorted(site)
    # Mails sent before pictures were processed name the original's hash: the same processed
    # picture answers there too, so they keep showing it (without its location).
    aliases = {Path(rel).name: data for rel, data in files.items() if rel not in pictures}
    assert set(aliases) == {legacy_name(name, data) for name, data in originals.items()}
    assert set(aliases.values()) <= set(pictures.values())
    assert not set(originals.values()) & set(pictures.values())
    assert not {Path(rel).name for rel in pictures} & set(originals)
    published = {Path(rel).name.split(".")[0]: Image.open(io.BytesIO(data))
                 for rel, data in pictures.items()}
    for name, picture in published.items():
        assert picture.width <= MAX_WIDTH, name
        assert not picture.getexif() and "exif" not in picture.info, name
        assert "icc_profile" not in picture.info, name
    assert published["crossing"].size == (1200, 900)
    assert published["crossing"].info.get("progressive") == 1
    sideways = published["sideways"].convert("RGB")
    assert sideways.size == (1200, 1600)  # turned upright: taller than wide
    assert sideways.getpixel((600, 2))[0] > 200 > sideways.getpixel((600, 2))[1]  # red on top
    assert published["logo"].format == "PNG" and published["logo"].mode == "RGBA"
    assert published["logo"].getpixel((0, 0))[3] == 0  # the corner stays transparent
    assert published["leaflet"].mode == "RGB"
    assert published["leaflet"].convert("RGB").getpixel((10, 10))[0] > 200  # still red

    assert shown == {Path(rel).name for rel in pictures}  # the email shows these files


@pytest.fixture
def unused_port() -> int:
    """A free loopback port for the test's SMTP server."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_same_photo_is_processed_once_and_named_the_same(tmp_path: Path) -> None:
    source = photo(seed=3)
    cache = cache_for(tmp_path)
    first = cache.get(source)
    assert first == process(source)[0]  # deterministic: same source, same bytes
    (cached,) = list(cache.folder.iterdir())
    assert hashed_name("crossing.jpg", source) == f"crossing.{cached.name[:10]}.jpg"
    cached.write_bytes(b"marker")  # proves the next call reads the cache, not the encoder
    assert cache.get(source) == b"marker" and len(list(cache.folder.iterdir())) == 1


def test_a_gif_logo_becomes_png_and_an_animation_keeps_its_frames() -> None:
    logo_gif, animation = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (300, 100), (200, 30, 30)).save(logo_gif, "GIF")
    frames = [Image.new("RGB", (200, 200), (40 * n, 90, 160)) for n in range(4)]
    frames[0].save(animation, "GIF", save_all=True, append_images=frames[1:], duration=200)
    output, suffix = process(logo_gif.getvalue())
    assert suffix == ".png" and Image.open(io.BytesIO(output)).format == "PNG"
    output, suffix = process(animation.getvalue())
    assert suffix == ".gif" and getattr(Image.open(io.BytesIO(output)), "n_frames", 1) == 4
