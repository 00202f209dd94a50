"""Pictures as subscribers get them: resized, recompressed, stripped of metadata, cached.

An editor's photo can be 36 MB, 4000 px wide and carry the GPS position where it was taken.
What the archive publishes (and the email shows) is made here from it, once:

- width at most 1200 px, twice the 600 px email body, sharp on high-density screens;
- JPEG for photos (progressive, quality 82, 4:2:0), PNG for transparency, PNG and GIF sources:
  WebP is not shown by Outlook and older clients, so it is never produced;
- the EXIF orientation is applied, then every metadata block (EXIF, GPS, XMP, comments,
  ICC profile) is dropped; colours with an ICC profile are converted to sRGB first;
- an animated GIF is published as it is: re-encoding would lose frames or grow it.

The output name comes from the source bytes and RECIPE, so the same source always gives the
same file, and the cache spares a re-encode on every check and build. The original is never
what gets published.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from newsletter.errors import NewsletterError

MAX_WIDTH = 1200
JPEG_QUALITY = 82
# Part of every output name: change it when the processing changes, so caches and CDNs renew.
RECIPE = f"v1 w{MAX_WIDTH} q{JPEG_QUALITY} progressive 4:2:0 strip srgb"
# Pillow's own safety limit (about 89 million pixels, a 9500 x 9500 picture).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# Files Pillow processes, by suffix; other files (a PDF) are published unchanged, or REFUSED.
SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
# Only these decoders are tried, whatever the file claims to be (JPEG includes MPO).
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
# Never published: mail clients do not show these, an SVG opened from the archive's address
# could run its script, and camera formats Pillow cannot clean may carry the GPS position.
REFUSED = frozenset({".svg", ".svgz", ".heic", ".heif", ".avif", ".jxl", ".dng", ".cr2", ".nef",
                     ".arw"})
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageError(NewsletterError):
    """A picture that cannot be read, or too large to open safely."""


def _suffix(name: str) -> str:
    return PurePosixPath(name.split("?", 1)[0].split("#", 1)[0]).suffix.lower()


def is_image(name: str) -> bool:
    """A file name whose picture is processed before it is published."""
    return _suffix(name) in SUFFIXES


def refuse(name: str) -> None:
    """Raise ImageError for a picture format the archive never publishes (SVG, HEIC, ...)."""
    suffix = _suffix(name)
    if suffix in REFUSED:
        kind = suffix.removeprefix(".").upper()
        raise ImageError(f"{name} is {kind}, which mail clients do not show and the archive "
                         "does not publish: save it as " + ("PNG" if "SVG" in kind else "JPEG"))


@contextmanager
def _guarded() -> Iterator[None]:
    """Pillow's remarks on damaged metadata are silenced; its bomb warning becomes an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _open(data: bytes, label: str) -> Image.Image:
    """Open lazily (header only), refusing decompression bombs with a clear message."""
    try:
        with _guarded():
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        pixels = re.search(r"\d+", str(exc))
        count = f"{int(pixels.group()):,} pixels, " if pixels else ""
        raise ImageError(f"{label} is too large to open safely ({count}the limit is "
                         f"{MAX_PIXELS:,}): resize it before adding it") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{label} cannot be read as a picture: save it again as JPEG or PNG"
                         ) from exc
    return image


def _animated(image: Image.Image) -> bool:
    return image.format == "GIF" and getattr(image, "n_frames", 1) > 1


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def output_suffix(image: Image.Image) -> str:
    """The published format: .gif if animated, .png for PNG, GIF or transparency, else .jpg."""
    if _animated(image):
        return ".gif"
    if image.format in ("PNG", "GIF") or _has_alpha(image):
        return ".png"  # drawings and logos: JPEG would blur their edges
    return ".jpg"


def digest(data: bytes) -> str:
    """Hash of the source bytes and the recipe: names the processed file."""
    hasher = hashlib.sha256(RECIPE.encode() + b"\0")
    hasher.update(data)  # not concatenated: sources can be tens of megabytes
    return hasher.hexdigest()


def published_suffix(data: bytes, suffix: str) -> str:
    """The suffix of the processed file; the source's own when its header cannot be read."""
    try:
        return output_suffix(_open(data, "picture"))
    except ImageError:
        return suffix


def _to_srgb(image: Image.Image) -> Image.Image:
    """Colours converted from an embedded profile (CMYK, Display P3) to sRGB, when one is given."""
    icc = image.info.get("icc_profile")
    target = "RGBA" if _has_alpha(image) else "RGB"
    if icc and image.mode in ("RGB", "RGBA", "CMYK"):
        try:
            converted = ImageCms.profileToProfile(
                image, io.BytesIO(icc), ImageCms.createProfile("sRGB"),
                outputMode="RGB" if image.mode == "CMYK" else image.mode)
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: the plain conversion below is close enough
    if image.mode in ("1", "L", "LA", "P", "RGB", "RGBA"):
        return image
    return image.convert(target)


def _shrink(image: Image.Image) -> Image.Image:
    """At most MAX_WIDTH wide once turned upright; the EXIF orientation is applied here."""
    rotated = image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
    width = image.height if rotated else image.width
    if width > MAX_WIDTH:
        if image.mode in ("1", "P"):  # palette pictures would be resized by nearest neighbour
            image = image.convert("RGBA" if _has_alpha(image) else "RGB")
        box = (image.width, MAX_WIDTH) if rotated else (MAX_WIDTH, image.height)
        # thumbnail lets the JPEG decoder scale down first: several times faster on photos.
        image.thumbnail(box, Image.Resampling.LANCZOS, 3.0)
    return ImageOps.exif_transpose(image) or image


def _encode(image: Image.Image, suffix: str) -> bytes:
    """Save without any metadata: info is emptied because PNG copies the ICC profile from it."""
    transparency = image.info.get("transparency") if image.mode == "P" else None
    image.info = {} if transparency is None else {"transparency": transparency}
    out = io.BytesIO()
    if suffix == ".png":
        image.save(out, "PNG", optimize=True)
    else:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True,
                   subsampling=2)
    return out.getvalue()


def process(data: bytes, label: str = "picture") -> tuple[bytes, str]:
    """(processed bytes, suffix) for one source picture; ImageError when it cannot be used."""
    image = _open(data, label)
    suffix = output_suffix(image)
    if suffix == ".gif":
        return data, suffix
    try:
        with _guarded():
            image = _to_srgb(_shrink(image))
            return _encode(image, suffix), suffix
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        raise ImageError(f"{label} cannot be read as a picture ({exc}): save it again as JPEG "
                         "or PNG") from exc


@dataclass(frozen=True)
class ImageCache:
    """Processed pictures on disk, named by digest: each source is encoded once."""

    folder: Path

    def get(self, data: bytes, label: str = "picture") -> bytes:
        """The processed picture for these source bytes, from the cache or made now."""
        key = digest(data)
        for path in self.folder.glob(key + ".*"):
            return path.read_bytes()
        output, suffix = process(data, label)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_bytes(output)
        os.replace(tmp, self.folder / (key + suffix))
        return output


def cache_for(workspace: Path) -> ImageCache:
    """The workspace's picture cache (safe to delete: it is rebuilt from the sources)."""
    return ImageCache(workspace / ".cache" / "images")


HASH_LENGTH = 10  # hex digits of a content hash in a published file name


def hashed_name(ref: str, content: bytes) -> str:
    """photo.png -> photo.<content hash>.png (folders flattened: the page folder holds all).

    A picture is named after its processed form (digest, published_suffix), so
    the email, the check and the archive agree on one name for one source and recipe.
    """
    path = PurePosixPath(ref.split("?", 1)[0].split("#", 1)[0])
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-") or "file"
    if is_image(ref):
        short = digest(content)[:HASH_LENGTH]
        return f"{stem}.{short}{published_suffix(content, path.suffix.lower())}"
    short = hashlib.sha256(content).hexdigest()[:HASH_LENGTH]
    return f"{stem}.{short}{path.suffix.lower()}"
