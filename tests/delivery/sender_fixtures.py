"""Helpers for the sender's tests: seed lists and subscribers in bulk, write issues, configure.

Subscribers are inserted with SQLAlchemy Core (fast, and independent of the audience CLI).
Import what you need: `from tests.delivery.sender_fixtures import seed, write_issue, ...`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import insert, select

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import (
    Delivery,
    MailingList,
    Subscriber,
    Subscription,
    Suppression,
    utcnow,
)
from newsletter.keyring import address_hash
from tests.conftest import address_key, write_config

BODY = {
    "en": "Hello {{ name | default(\"friend\") }},\n\nNews from the coalition in English.\n",
    "fr": "Bonjour {{ name | default(\"à toutes et à tous\") }},\n\nLes nouvelles en français.\n",
    "es": "Hola {{ name | default(\"amigas y amigos\") }},\n\nLas noticias en español.\n",
}
SUBJECT = {"en": "Coalition news", "fr": "Nouvelles de la coalition", "es": "Noticias"}


def write_issue(workspace: Path, slug: str = "nov", languages: Sequence[str] = ("en", "fr", "es"),
                list_slug: str = "news", body_extra: str = "") -> Path:
    """An issue folder with one short Markdown file per language."""
    folder = workspace / "issues" / slug
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issue.toml").write_text(
        f'list = "{list_slug}"\ndate = 2026-11-20\nvolume = 9\nnumber = "11"\n', "utf-8")
    for lang in languages:
        (folder / f"{lang}.md").write_text(
            f'+++\nsubject = "{SUBJECT.get(lang, lang)}"\ntitle = "{SUBJECT.get(lang, lang)}"\n'
            f'preheader = "{lang} preheader"\n+++\n\n{BODY.get(lang, BODY["en"])}{body_extra}',
            "utf-8")
    return folder


def configure(workspace: Path, db_url: str, port: int, **smtp: object) -> None:
    """newsletter.toml pointing at the test database and SMTP server, with fast retries."""
    values = {"host": "127.0.0.1", "port": port, "workers": 1, "connections": 2, "timeout": 5.0,
              "retry_delay": 0.05, "retry_window": 10.0, **smtp}
    lines = "\n".join(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"'
                      for k, v in values.items())
    write_config(workspace, db_url, f"\n[smtp]\n{lines}\n")


def seed(workspace: Path, languages: Sequence[str | None], *, list_slug: str = "news",
         list_languages: Sequence[str] = ("en", "fr", "es"), default_language: str = "en",
         status: str = "confirmed", start: int = 0) -> list[str]:
    """A list (created if missing) and one subscriber per entry of `languages`; their emails."""
    engine = make_engine(load_settings(workspace).database_url)
    now = utcnow()
    emails = [f"reader{start + i}@example.org" for i in range(len(languages))]
    with engine.begin() as conn:
        list_id = conn.execute(select(MailingList.id).where(MailingList.slug == list_slug)).scalar()
        if list_id is None:
            list_id = conn.execute(insert(MailingList).values(
                slug=list_slug, name="Coalition News", default_language=default_language,
                languages=list(list_languages), opt_in="double", public=True, description="",
                created_at=now).returning(MailingList.id)).scalar_one()
        if languages:
            returning = insert(Subscriber).returning(Subscriber.id, sort_by_parameter_order=True)
            ids = conn.execute(returning, [
                {"email": e, "name": f"Reader {start + i}", "language": lang, "attributes": {},
                 "created_at": now, "updated_at": now}
                for i, (e, lang) in enumerate(zip(emails, languages, strict=True))]).scalars().all()
            conn.execute(insert(Subscription), [
                {"subscriber_id": sid, "list_id": list_id, "status": status, "created_at": now,
                 "confirmed_at": now, "updated_at": now} for sid in ids])
    engine.dispose()
    return emails


def suppress(workspace: Path, email: str) -> None:
    """Put an address on the suppression list, as its keyed hash."""
    url = load_settings(workspace).database_url
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Suppression).values(
            email_hash=address_hash(email, address_key(url)), reason="hard-bounce", detail="",
            created_at=utcnow()))
    engine.dispose()


def deliveries(workspace: Path) -> dict[str, tuple[str, str, str | None]]:
    """email -> (status, language, last reply) for every delivery row."""
    engine = make_engine(load_settings(workspace).database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(Subscriber.email, Delivery.status, Delivery.language,
                                   Delivery.last_reply)
                            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)).all()
    engine.dispose()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def copies(*servers) -> Counter[str]:
    """How many copies each recipient got, over all the servers."""
    return Counter(rcpts[0] for server in servers for _s, rcpts, _d in server.messages)


def stop_after(server, count: int):
    """A reply_for that takes the server down once it stored `count` messages."""
    def reply(rcpt, n):
        if len(server.messages) >= count:
            server.stop()
        return None
    return reply


def processes(command: bytes, *, session: int | None = None, parent: int | None = None
              ) -> list[int]:
    """Live (not zombie) processes whose command line holds `command`, in a session or with a
    parent."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):  # not a process, or gone meanwhile
            continue
        if state[0] == "Z" or command not in cmdline:
            continue
        if (session is None or int(state[3]) == session) and (
                parent is None or int(state[1]) == parent):
            found.append(int(entry.name))
    return found


def until(predicate: Callable[[], object], timeout: float = 30.0) -> bool:
    """Wait for `predicate` to hold; False if it still does not after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
