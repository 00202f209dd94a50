"""`send --at`: when a scheduled issue starts, read from the editor's words with `zoneinfo`.

Two forms: a local time and an IANA zone ("2026-12-01 09:00 Europe/Brussels"), or an ISO
timestamp with its UTC offset ("2026-12-01T09:00+01:00"). The time is stored in UTC with the
zone it was given in, so `issue status` shows both. "Now" is db.models.utcnow, the clock tests
can move.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.db.models import utcnow
from newsletter.errors import ValidationError

EXAMPLE = '"2026-12-01 09:00 Europe/Brussels" or "2026-12-01T09:00+01:00"'


@dataclass(frozen=True)
class Schedule:
    when: datetime  # aware, UTC
    zone: str  # an IANA name, or the offset given ("+01:00")


def parse_at(text: str) -> Schedule:
    """The schedule the words give; ValidationError (one line) when unclear or past."""
    words = text.strip()
    stamp, _, zone_name = words.rpartition(" ")
    if stamp and not zone_name[:1].isdigit():
        local = _stamp(stamp, words)
        if local.tzinfo is not None:
            raise ValidationError(f"--at {words!r}: give an offset or a zone name, not both")
        zone = _zone(zone_name)
        when, label = local.replace(tzinfo=zone), zone_name
    else:
        when = _stamp(words, words)
        if when.tzinfo is None:
            raise ValidationError(f"--at {words!r}: say which time zone, e.g. {EXAMPLE}")
        label = when.strftime("%z")
        label = f"{label[:3]}:{label[3:]}"
    when = when.astimezone(UTC)
    now = utcnow()
    if when <= now:
        raise ValidationError(f"--at {words!r} is in the past ({describe(when, label)}; "
                              f"it is now {now:%Y-%m-%d %H:%M} UTC)")
    return Schedule(when, label)


def _stamp(stamp: str, words: str) -> datetime:
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        raise ValidationError(f"--at {words!r}: not a date and time; write {EXAMPLE}") from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"--at: unknown time zone {name!r} (an IANA name such as "
                              f"Europe/Brussels, or an offset such as +01:00)") from None


def describe(when: datetime, zone: str | None) -> str:
    """"2026-12-01 09:00 Europe/Brussels (08:00 UTC)"."""
    utc = when.astimezone(UTC)
    if not zone or zone == "UTC":
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    try:
        local = utc.astimezone(ZoneInfo(zone)) if "/" in zone else utc.astimezone(
            datetime.fromisoformat(f"2000-01-01T00:00{zone}").tzinfo)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    return f"{local:%Y-%m-%d %H:%M} {zone} ({utc:%Y-%m-%d %H:%M} UTC)"
