"""The sender's identity as the issue was enqueued: what the message builder reads besides
the compiled edition, kept in the issue row so a worker without the workspace builds the same
message as `newsletter send` in it.

At enqueue (dispatch.begin_send) `snapshot` takes the [newsletter] section (from address,
names per language, base_url, reply_to, domains, sender id), the VERP address parts of
[bounces] and [archive] base_url; a worker's `apply` lays them over its own settings, which
give only what belongs to the host: the database, the keys, SMTP and DKIM. The secret keys are
never copied into the database.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Connection

from newsletter.config import Settings, is_secret
from newsletter.delivery import issuedata

KEY = "letterhead"
VERSION = 1
COPIED = {"bounces": ("domain", "local_part"), "archive": ("base_url",)}


def snapshot(settings: Settings) -> dict[str, Any]:
    """The settings the message builder reads, as plain JSON values."""
    newsletter = {k: (list(v) if isinstance(v, list) else v)
                  for k, v in settings.values["newsletter"].items()
                  if not is_secret("newsletter", k)}
    return {
        "version": VERSION,
        "newsletter": newsletter,
        "tables": {key: dict(table) for (section, key), table in settings.tables.items()
                   if section == "newsletter"},
        **{section: {k: settings.values[section][k] for k in keys}
           for section, keys in COPIED.items()},
    }


def apply(settings: Settings, letterhead: dict[str, Any] | None) -> Settings:
    """These settings with the enqueued identity laid over them (unchanged without one: an
    issue enqueued before the identity was stored is built from the worker's settings)."""
    if not letterhead or letterhead.get("version") != VERSION:
        return settings
    values = {section: dict(keys) for section, keys in settings.values.items()}
    values["newsletter"].update(letterhead["newsletter"])
    for section in COPIED:
        values[section].update(letterhead.get(section, {}))
    tables = {k: v for k, v in settings.tables.items() if k[0] != "newsletter"}
    tables.update({("newsletter", key): dict(t) for key, t in letterhead["tables"].items()})
    return dataclasses.replace(settings, values=values, tables=tables, typed={})


def store(conn: Connection, issue_id: int, settings: Settings) -> None:
    """Keep the identity of this enqueue in the issue row's data."""
    issuedata.merge(conn, issue_id, {KEY: snapshot(settings)})


def stored(conn: Connection, issue_id: int) -> dict[str, Any] | None:
    return issuedata.read(conn, issue_id).get(KEY)
