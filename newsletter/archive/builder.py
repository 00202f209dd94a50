"""build_archive: bring the static archive up to date with the sent editions.

A build first reads its inputs' digest (inputs.py). When the last build left the same digest,
the clock is still inside the span its pages hold for, and its files are all there, the site is
up to date and the build ends there: `newsletter archive build` with nothing new costs one query
and a few file reads, not the planning and rendering modules' imports. Otherwise site.py plans
the whole site and writes what changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from newsletter.archive.inputs import read_inputs, still_current
from newsletter.archive.writer import intact, read_manifest, read_record
from newsletter.config import Settings


@dataclass(frozen=True)
class BuildReport:
    """What a build did, for the CLI's text and --json output."""

    out: str
    languages: list[str]
    editions: int
    pages: int
    assets: int
    written: int
    unchanged: int
    removed: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"{self.editions} editions, {self.written} files written, {self.removed} "
                f"removed in {self.out} ({self.seconds:.1f} s)")


def _up_to_date(settings: Settings, out: Path, digest: str, now: datetime,
                started: float) -> BuildReport | None:
    """The last build's report when the folder is already built from these inputs."""
    record = read_record(out)
    if not still_current(record, digest, now, settings.workspace.resolve()):
        return None
    if record["report"].get("warned"):
        return None  # the warnings are said again (and a worker's build refuses: whole)
    manifest = read_manifest(out)
    if not intact(out, manifest):
        return None
    report = record["report"]
    return BuildReport(
        out=str(out), languages=list(report["languages"]), editions=report["editions"],
        pages=report["pages"], assets=report["assets"], written=0,
        unchanged=len(manifest["files"]), removed=0,
        seconds=round(time.perf_counter() - started, 3),
    )


def build_archive(
    *,
    settings: Settings,
    engine: Engine,
    out: Path | None = None,
    clean: bool = False,
    now: datetime | None = None,
    whole: bool = False,
) -> BuildReport:
    """Build or update the static archive; returns counts of files written/unchanged/removed.

    whole (a worker's build, maybe on a host without the workspace): refuse, writing nothing,
    rather than publish an issue without its pictures or drop the statements' pages."""
    started = time.perf_counter()
    out = out or settings.path(settings.archive.out)
    now = now or datetime.now(UTC)
    inputs = read_inputs(settings, engine)
    if not clean:
        report = _up_to_date(settings, out, inputs.digest, now, started)
        if report is not None:
            return report
    # Imported only now: planning and rendering bring Jinja2, Babel, feedgen and the ORM.
    from newsletter.archive.site import build_site

    report = build_site(settings=settings, engine=engine, out=out, inputs=inputs, now=now,
                        clean=clean, whole=whole)
    return replace(report, seconds=round(time.perf_counter() - started, 3))
