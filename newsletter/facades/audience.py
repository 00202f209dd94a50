"""The facades for people and words: subscribers, lists, compose, statements."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from newsletter.facades.base import Facade

if TYPE_CHECKING:
    from newsletter.audience.erasure import ErasureReport, PurgeReport
    from newsletter.audience.importreport import ImportReport
    from newsletter.audience.invite import InviteReport
    from newsletter.audience.listedits import DeleteReport, ListUpdate
    from newsletter.audience.lists import ListInfo
    from newsletter.audience.listsync import SyncReport
    from newsletter.audience.optin import OptIn
    from newsletter.audience.preferences import Membership, PreferencesView
    from newsletter.audience.subscribers import MergeCounts, SubscriberRow
    from newsletter.compose.preview import Recipient


class Audience(Facade):
    """Subscribers and subscriptions: opt-in, add, remove, erase, list, export (audience/)."""

    @cached_property
    def optin(self) -> OptIn:
        """The form's double opt-in, with the confirmation mails' texts."""
        from newsletter.audience.optin import OptIn
        from newsletter.web.mails import SystemMails

        s = self.services
        return OptIn.from_settings(s.settings, s.engine, SystemMails(s.settings))

    def add(self, email: str, list_slug: str, **options: Any) -> MergeCounts:
        from newsletter.audience.subscribers import add_subscriber

        s = self.services
        return add_subscriber(s.engine, email=email, list_slug=list_slug,
                              address_key=s.keyring.address_key, **options)

    def leave(self, email: str, list_slug: str) -> str:
        from newsletter.audience.subscribers import remove_subscriber

        s = self.services
        return remove_subscriber(s.engine, email=email, list_slug=list_slug,
                                 address_key=s.keyring.address_key)

    def erase(self, email: str | None = None, *, subscriber_id: int | None = None,
              source: str = "cli") -> ErasureReport:
        from newsletter.audience.erasure import erase

        return erase(self.services.engine, email=email, subscriber_id=subscriber_id,
                     address_key=self.services.keyring.address_key, source=source)

    def subscribers(self, **filters: Any) -> Iterator[SubscriberRow]:
        from newsletter.audience.subscribers import iter_subscribers

        return iter_subscribers(self.services.engine, **filters)

    def export_csv(self, out: IO[str], list_slug: str, status: str | None = None) -> int:
        from newsletter.audience.export import export_csv

        return export_csv(self.services.engine, out, list_slug=list_slug, status=status)

    def export_data(self, email: str | None = None, **by_id: int) -> dict[str, Any]:
        from newsletter.audience.portability import export_data

        return export_data(self.services.engine, email=email, **by_id)

    def preferences(self, subscriber_id: int, list_id: int) -> PreferencesView:
        from newsletter.audience.preferences import load_preferences

        with self.services.engine.connect() as conn:
            return load_preferences(conn, subscriber_id, list_id)

    def membership(self, subscriber_id: int, list_id: int) -> Membership | None:
        from newsletter.audience.preferences import membership

        with self.services.engine.connect() as conn:
            return membership(conn, subscriber_id, list_id)

    def form_list(self, slug: str) -> dict[str, Any]:
        from newsletter.audience.optin import find_list

        with self.services.engine.connect() as conn:
            return find_list(conn, slug)

    def import_csv(self, path: Path, list_slug: str, **options: Any) -> ImportReport:
        """Stream a CSV file into a list (audience/importer.py)."""
        from newsletter.audience.importer import import_csv

        s = self.services
        return import_csv(s.engine, path=path, list_slug=list_slug,
                          address_key=s.keyring.address_key, **options)

    def invite(self, list_slug: str, **options: Any) -> InviteReport:
        """Queue confirmation mails for the never-asked pending people (audience/invite.py)."""
        from newsletter.audience.invite import invite_pending

        return invite_pending(self.optin, list_slug, **options)

    def count_never_asked(self, list_slug: str) -> int:
        from newsletter.audience.invite import count_never_asked

        return count_never_asked(self.optin, list_slug)

    def purge_pending(self, days: int, dry_run: bool = False) -> PurgeReport:
        """`newsletter maintenance`: subscriptions never confirmed (audience/erasure.py)."""
        from newsletter.audience.erasure import purge_pending

        return purge_pending(self.services.engine, days=days, dry_run=dry_run)

    def compact(self) -> bool:
        """SQLite: rewrite the database file (audience/erasure.py); whether the WAL emptied."""
        from newsletter.audience.erasure import compact

        return compact(self.services.engine)


class Lists(Facade):
    """Mailing lists: add, show, update, rename, delete, sync (audience/list*.py)."""

    def add(self, slug: str, **fields: Any) -> ListInfo:
        from newsletter.audience.listedits import add_list

        return add_list(self.services.engine, slug=slug, **fields)

    def all(self) -> list[ListInfo]:
        from newsletter.audience.lists import all_lists

        return all_lists(self.services.engine)

    def get(self, slug: str) -> ListInfo:
        from newsletter.audience.lists import get_list

        return get_list(self.services.engine, slug)

    def update(self, slug: str, wanted: ListUpdate, *, force: bool = False) -> dict[str, Any]:
        from newsletter.audience.listedits import update_list

        return update_list(self.services.engine, slug, wanted, force=force)

    def rename(self, old: str, new: str) -> ListInfo:
        from newsletter.audience.listedits import rename_list

        return rename_list(self.services.engine, old, new)

    def count_issues(self, list_id: int) -> int:
        from newsletter.audience.listedits import count_issues

        return count_issues(self.services.engine, list_id)

    def delete(self, slug: str) -> DeleteReport:
        from newsletter.audience.listedits import delete_list

        return delete_list(self.services.engine, slug)

    def sync(self, path: Path, *, dry_run: bool = False, force: bool = False) -> SyncReport:
        """Apply subscribers/lists.toml (audience/listsync.py)."""
        from newsletter.audience.listsync import sync_lists

        return sync_lists(self.services.engine, path, dry_run=dry_run, force=force)


class Compose(Facade):
    """What the composer reads from the database for `issue check` and `preview`."""

    def list_languages(self, list_slug: str) -> list[str] | None:
        from newsletter.compose.preview import list_languages

        return list_languages(self.services.engine, list_slug)

    def default_language(self, list_slug: str) -> str | None:
        from newsletter.compose.preview import list_default_language

        return list_default_language(self.services.engine, list_slug)

    def recipient(self, list_slug: str, email: str) -> Recipient:
        """One subscriber's real slots, for `issue preview --as` (compose/preview.py)."""
        from newsletter.compose.preview import recipient

        s = self.services
        return recipient(s.settings, s.engine, list_slug, email)


class Statements(Facade):
    """Sign-on statements' signatures: list, decide, merge organisations named alike, export
    (statements/moderation.py)."""

    def signatures(self, slug: str, statuses: Sequence[str] = ()) -> list[dict[str, Any]]:
        from newsletter.statements.moderation import signatures

        return signatures(self.services.engine, slug, statuses)

    def decide(self, slug: str, decision: str, ids: Iterable[int] | None) -> list[int]:
        from newsletter.statements.moderation import decide

        return decide(self.services.engine, slug, decision, ids)

    def approved_spelling(self, slug: str, signature: int) -> str | None:
        from newsletter.statements.moderation import approved_spelling

        return approved_spelling(self.services.engine, slug, signature)

    def merge(self, slug: str, signature: int, spelling: str) -> None:
        from newsletter.statements.moderation import merge

        merge(self.services.engine, slug, signature, spelling)

    def keep_apart(self, slug: str, signature: int) -> None:
        from newsletter.statements.moderation import keep_apart

        keep_apart(self.services.engine, slug, signature)

    def export_csv(self, slug: str) -> str:
        from newsletter.statements.moderation import export_csv

        return export_csv(self.services.engine, slug)
