"""Which language a page or system mail speaks: a pure choice over the candidates we know.

Order: the subscriber's own preference, then `?lang=`, then the browser's Accept-Language,
then the list's default language, then the configured default language ([newsletter]
default_language), then the first interface language.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from newsletter.i18n import LANGUAGES


def base_language(tag: str | None) -> str | None:
    """'fr-CA' -> 'fr'; None or junk -> None."""
    if not tag:
        return None
    base = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return base if base.isalpha() and 1 < len(base) < 9 else None


def accept_language(header: str | None) -> list[str]:
    """Base languages from an Accept-Language header, best first (q=0 dropped)."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header[:512].split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        base = base_language(tag)
        if base and quality > 0:
            weighted.append((-quality, position, base))
    return [base for _q, _p, base in sorted(weighted)]


def choose_language(
    *,
    preference: str | None = None,
    query: str | None = None,
    header: str | None = None,
    default: str | None = None,
    allowed: Sequence[str] | None = None,
    fallback: str | None = None,
) -> str:
    """The first candidate that we can speak (and, when given, that the list offers)."""
    speakable = [lang for lang in (allowed or LANGUAGES) if lang in LANGUAGES] or list(LANGUAGES)
    if preference in speakable:  # the common case on personal pages: no header parsing
        return preference  # type: ignore[return-value]
    candidates: Iterable[str | None] = (
        base_language(preference),
        base_language(query),
        *accept_language(header),
        base_language(default),
    )
    for candidate in candidates:
        if candidate in speakable:
            return candidate
    return fallback if fallback in speakable else speakable[0]  # type: ignore[return-value]
