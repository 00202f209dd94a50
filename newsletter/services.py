"""build_services(settings): the objects the CLI, the web app and the workers share."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.db.engine import make_engine
from newsletter.db.migrate import needs_upgrade, upgrade
from newsletter.errors import NewsletterError
from newsletter.keyring import Keyring, load_keyring


class SchemaOutOfDate(NewsletterError):
    """The database has not been migrated."""


@dataclass
class Services:
    """Settings plus the lazily created engine and keyring; one per process."""

    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def keyring(self) -> Keyring:
        """The link signer and the address key (read from the database once)."""
        return load_keyring(self.settings, self.engine)

    def upgrade(self) -> None:
        """Run migrations up to head."""
        upgrade(self.engine, secret_key=str(self.settings.secret_key))

    def require_schema(self) -> None:
        """Fail with a clear message when `newsletter db upgrade` has not run."""
        if needs_upgrade(self.engine):
            raise SchemaOutOfDate(
                "the database schema is missing or old: run `newsletter db upgrade`"
            )

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


def build_services(settings: Settings) -> Services:
    """Build the shared service objects for one process."""
    return Services(settings=settings)
