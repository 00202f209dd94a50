"""`issue check` weighs pictures as subscribers will get them: after processing, not as taken."""

from __future__ import annotations

import io
import json
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from newsletter.cli.main import cli
from newsletter.compose.checkrules import EMAIL_IMAGE_BYTES, IMAGE_BYTES
from newsletter.images import process

NEWSLETTER = str(Path(sys.executable).with_name("newsletter"))


def grainy(seed: int, grain: float) -> bytes:
    """A 1200 x 900 photo; more grain weighs more after processing (0.1: ~150 KB, 0.35: ~370)."""
    size = (1200, 900)
    noise = Image.frombytes("L", size, random.Random(seed).randbytes(size[0] * size[1]))
    light = Image.linear_gradient("L").resize(size)
    mixed = Image.blend(light, noise, grain)
    out = io.BytesIO()
    Image.merge("RGB", (light, mixed, mixed)).save(out, "JPEG", quality=95)
    return out.getvalue()


def issue_with(make_issue, pictures: dict[str, bytes]) -> Path:  # noqa: ANN001 - fixture
    body = "".join(f"![Photo {name}]({name})\n\n" for name in pictures)
    folder = make_issue(files={"en.md": body})
    for name, data in pictures.items():
        (folder / name).write_bytes(data)
    return folder


def findings(compose_ws: Path, slug: str = "broken") -> tuple[int, list[dict]]:
    result = CliRunner().invoke(cli, ["-w", str(compose_ws), "issue", "check", slug, "--json"])
    return result.exit_code, json.loads(result.output)["findings"]


def test_a_picture_over_200_kb_after_processing_gets_a_warning(make_issue, compose_ws) -> None:
    light, heavy = grainy(1, 0.1), grainy(2, 0.35)
    assert len(process(light)[0]) < IMAGE_BYTES < len(process(heavy)[0])
    assert len(light) > IMAGE_BYTES  # the source is heavy: what counts is what is sent
    issue_with(make_issue, {"light.jpg": light, "heavy.jpg": heavy})
    code, found = findings(compose_ws)
    heavy_ones = [f for f in found if f["rule"] == "image-too-heavy"]
    assert code == 0
    assert [(f["severity"], f["line"]) for f in heavy_ones] == [("warning", 9)]
    assert heavy_ones[0]["message"].startswith("'heavy.jpg' weighs 3")
    assert "after processing (over 200 KB)" in heavy_ones[0]["message"]


def test_an_email_whose_pictures_add_up_to_over_1_mb_gets_a_warning(make_issue, compose_ws
                                                                   ) -> None:
    pictures = {f"p{n}.jpg": grainy(n, 0.1) for n in range(8)}
    sizes = [len(process(data)[0]) for data in pictures.values()]
    assert sum(sizes[:6]) < EMAIL_IMAGE_BYTES < sum(sizes) and max(sizes) < IMAGE_BYTES
    issue_with(make_issue, pictures)
    code, found = findings(compose_ws)
    assert code == 0
    total = [f for f in found if f["rule"] == "images-too-heavy"]
    assert [(f["file"], f["severity"]) for f in total] == [("issues/broken/en.md", "warning")]
    assert "weigh 1.1 MB after processing (over 1 MB)" in total[0]["message"]
    assert not [f for f in found if f["rule"] == "image-too-heavy"]

    for name in list(pictures)[6:]:
        (compose_ws / "issues/broken" / name).unlink()
    issue_with(make_issue, {name: pictures[name] for name in list(pictures)[:6]})
    assert not [f for f in findings(compose_ws)[1] if f["rule"] == "images-too-heavy"]


def test_unreadable_pictures_fail_the_check_one_line_each(make_issue, compose_ws) -> None:
    whole = grainy(3, 0.1)
    bomb = b"\x89PNG\r\n\x1a\n" + b"".join(  # a 30000 x 30000 header over a few bytes
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        for kind, data in ((b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)),
                           (b"IDAT", zlib.compress(b"\0" * 64)), (b"IEND", b"")))
    issue_with(make_issue, {"good.jpg": whole, "cut.jpg": whole[: len(whole) // 3],
                            "bomb.png": bomb})
    done = subprocess.run([NEWSLETTER, "-w", str(compose_ws), "issue", "check", "broken"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    problems = [line for line in (done.stdout + done.stderr).splitlines() if " error " in line]
    assert len(problems) == 2, problems
    assert problems[0].startswith("issues/broken/en.md:9: error image-unreadable: cut.jpg cannot "
                                  "be read as a picture (image file is truncated")
    assert problems[0].endswith("): save it again as JPEG or PNG")
    assert problems[1] == (
        "issues/broken/en.md:11: error image-unreadable: bomb.png is too large to open safely "
        "(900,000,000 pixels, the limit is 89,478,485): resize it before adding it")
