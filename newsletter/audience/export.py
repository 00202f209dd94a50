"""CSV export that is safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import json
from typing import IO

from sqlalchemy import Engine

from newsletter.audience.subscribers import iter_subscribers

DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: str) -> str:
    """Prefix a quote so spreadsheets show a cell starting with = + - @ as text, not a formula."""
    return "'" + value if value.startswith(DANGEROUS_START) else value


def export_csv(engine: Engine, out: IO[str], *, list_slug: str, status: str | None = None) -> int:
    """Write the list's subscribers as CSV; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["email", "name", "language", "status", "created_at", "attributes"])
    count = 0
    for row in iter_subscribers(engine, list_slug=list_slug, status=status):
        attrs = json.dumps(row.attributes, ensure_ascii=False) if row.attributes else ""
        cells = [row.email, row.name, row.language or "", row.status, row.created_at, attrs]
        writer.writerow([neutralize(c) for c in cells])
        count += 1
    return count
