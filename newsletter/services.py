"""build_services(settings): the one object the CLI, the web app and the workers share.

`Services` is frozen: it owns the process's engine and keyring, and hands out small facades
(`audience`, `lists`, `compose`, `statements`, `sending`, `outbox`, `bounces`, `archive`, in
`facades/`) that take the services object and delegate to the owning modules. So every front
end has one way in and one argument order. Everything is built on first use: a command that
never touches the database opens none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from newsletter.config import Settings
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from newsletter.facades import (
        Archive,
        Audience,
        Bounces,
        Compose,
        Lists,
        Outbox,
        Sending,
        Statements,
    )
    from newsletter.keyring import Keyring


class SchemaOutOfDate(NewsletterError):
    """The database has not been migrated."""


@dataclass(frozen=True)
class Services:
    """Settings, the engine, the keyring and the facades of one process, each built once.

    Frozen: nothing is assigned after construction. The cached properties below store their
    value in the instance's `__dict__` on first access, which a frozen dataclass allows.
    `shared_engine` is an engine owned elsewhere (another Services on the same database, a
    test's engine): it is used instead of opening one, and `close()` leaves it open.
    """

    settings: Settings
    shared_engine: Engine | None = field(default=None, repr=False, compare=False)

    @cached_property
    def engine(self) -> Engine:
        """The process's engine; every facade but the send's uses this one."""
        if self.shared_engine is not None:
            return self.shared_engine
        from newsletter.db.engine import make_engine

        return make_engine(self.settings.database_url)

    @cached_property
    def sender_engine(self) -> Engine:
        """The send's engine: on SQLite its connections take the write lock at BEGIN and hash
        addresses in SQL (db/sender.py), which the rest of the process must not inherit."""
        from newsletter.db.sender import sender_engine

        return sender_engine(self.settings.database_url, self.keyring.address_key)

    @cached_property
    def keyring(self) -> Keyring:
        """The link signer and the address key (read from the database once)."""
        from newsletter.keyring import load_keyring

        return load_keyring(self.settings, self.engine)

    @cached_property
    def audience(self) -> Audience:
        from newsletter.facades import Audience

        return Audience(self)

    @cached_property
    def lists(self) -> Lists:
        from newsletter.facades import Lists

        return Lists(self)

    @cached_property
    def compose(self) -> Compose:
        from newsletter.facades import Compose

        return Compose(self)

    @cached_property
    def statements(self) -> Statements:
        from newsletter.facades import Statements

        return Statements(self)

    @cached_property
    def sending(self) -> Sending:
        from newsletter.facades import Sending

        return Sending(self)

    @cached_property
    def outbox(self) -> Outbox:
        from newsletter.facades import Outbox

        return Outbox(self)

    @cached_property
    def bounces(self) -> Bounces:
        from newsletter.facades import Bounces

        return Bounces(self)

    @cached_property
    def archive(self) -> Archive:
        from newsletter.facades import Archive

        return Archive(self)

    @property
    def on_sqlite(self) -> bool:
        """Whether the database is a SQLite file (db/engine.py's `is_sqlite`)."""
        from newsletter.db.engine import is_sqlite

        return is_sqlite(self.engine)

    def sharing(self, settings: Settings) -> Services:
        """Services with other settings on this object's engine (e.g. a second web app)."""
        return Services(settings=settings, shared_engine=self.engine)

    def upgrade(self) -> None:
        """Run migrations up to head."""
        from newsletter.db.migrate import upgrade

        upgrade(self.engine, secret_key=str(self.settings.secret_key))

    def require_schema(self) -> None:
        """Fail with a clear message when `newsletter db upgrade` has not run."""
        from newsletter.db.migrate import needs_upgrade

        if needs_upgrade(self.engine):
            raise SchemaOutOfDate(
                "the database schema is missing or old: run `newsletter db upgrade`"
            )

    def close(self) -> None:
        """Dispose of the engines this object opened (not a shared one)."""
        opened = self.__dict__
        if "sender_engine" in opened:
            opened["sender_engine"].dispose()
        if "engine" in opened and self.shared_engine is None:
            opened["engine"].dispose()


def build_services(settings: Settings, *, engine: Engine | None = None) -> Services:
    """The shared service object of one process; `engine`, if given, is used and left open."""
    return Services(settings=settings, shared_engine=engine)
