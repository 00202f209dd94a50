"""One owner per concept: the database (tables, engines, dialect tests) lives in newsletter/db/,
and subscription state is written by audience/subscriptions.py only.

Before, seven modules re-aliased the tables under five naming styles and seven branched on the
dialect themselves; this keeps it that way when new code comes in.
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "newsletter"
RULES = {
    "a table aliased outside db/tables.py": re.compile(r"__table__|cast\(Table"),
    "a dialect test outside db/ (use db.engine.is_sqlite)": re.compile(r"dialect\.name"),
    "an engine made outside db/engine.py": re.compile(r"\bcreate_engine\b"),
    "a setting read by string (use settings.<section>.<key>)": re.compile(r"settings\[[\"']"),
}


def test_only_the_db_package_names_tables_dialects_and_engines():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "db" in path.relative_to(PACKAGE).parts[:1]:
            continue
        text = path.read_text("utf-8")
        for what, pattern in RULES.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {what}")
    assert not found, "\n".join(found)


# A subscription row is its status and the times of its moves: any INSERT or UPDATE of it is a
# status write, in Core, in the ORM, in raw SQL, or through the bulk writer of db/bulk.py.
SUBSCRIPTION_WRITES = re.compile(
    r"\b(?:update|insert)\(\s*(?:SUBSCRIPTIONS|Subscription)\b"
    r"|\b(?:SUBSCRIPTIONS|Subscription(?:\.__table__)?)\.(?:update|insert)\("
    r"|\b(?:UPDATE|INSERT\s+INTO)\s+subscriptions\b"
    r"|\.(?:insert_subscriptions|confirm_subscriptions)\("
)
STATE_OWNER = PACKAGE / "audience" / "subscriptions.py"


def test_only_the_subscription_workflow_writes_subscription_status():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == STATE_OWNER or "db" in path.relative_to(PACKAGE).parts[:1]:
            continue
        text = path.read_text("utf-8")
        for match in SUBSCRIPTION_WRITES.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {match.group(0)}")
    assert not found, "subscriptions written outside audience/subscriptions.py:\n" + "\n".join(
        found)


# The archive consumes sent issues: it sits above the composer and the message builder, which
# take pictures from newsletter/images.py and URLs from newsletter/links.py. Only the send's
# orchestration (delivery/dispatch.py) calls into the archive, to publish the web version.
ARCHIVE_IMPORT = re.compile(r"^\s*(?:from newsletter\.archive\b|from newsletter import archive\b"
                            r"|import newsletter\.archive\b)", re.M)
MAY_CALL_THE_ARCHIVE = {PACKAGE / "delivery" / "dispatch.py"}


def test_the_composer_and_the_sender_do_not_import_the_archive():
    found = []
    for folder in ("compose", "delivery", "audience", "bounces"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            if path in MAY_CALL_THE_ARCHIVE:
                continue
            text = path.read_text("utf-8")
            for match in ARCHIVE_IMPORT.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    assert not found, "\n".join(found)
