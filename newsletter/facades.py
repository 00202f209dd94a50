"""The facades `Services` hands out: one way in for the front ends, `services` first.

Each facade holds the services object and delegates to the module that owns the concept; no
domain logic lives here. The owners are imported when a method is called, so building a facade
costs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from newsletter.archive.builder import BuildReport
    from newsletter.audience.erasure import ErasureReport, PurgeReport
    from newsletter.audience.importreport import ImportReport
    from newsletter.audience.invite import InviteReport
    from newsletter.audience.listedits import DeleteReport, ListUpdate
    from newsletter.audience.lists import ListInfo
    from newsletter.audience.listsync import SyncReport
    from newsletter.audience.optin import OptIn
    from newsletter.audience.subscribers import MergeCounts, SubscriberRow
    from newsletter.bounces.policy import ReportRow
    from newsletter.bounces.receiver import Processor
    from newsletter.compose.preview import Recipient
    from newsletter.delivery.daemon import WorkerOptions, WorkerReport
    from newsletter.delivery.dispatch import SendPlan
    from newsletter.delivery.issues import IssueStatus, IssueSummary
    from newsletter.delivery.registry import WorkerInfo
    from newsletter.delivery.rehearsal import DryRunReport, TestCopy
    from newsletter.delivery.relayview import RelayOut
    from newsletter.delivery.retention import RollUpReport
    from newsletter.delivery.runner import RunResult
    from newsletter.delivery.schedule import Schedule
    from newsletter.outbox import OutboxReport, OutboxRow
    from newsletter.services import Services


class Facade:
    def __init__(self, services: Services) -> None:
        self.services = services


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

    def erase(self, email: str) -> ErasureReport:
        from newsletter.audience.erasure import erase

        s = self.services
        return erase(s.engine, email=email, address_key=s.keyring.address_key)

    def subscribers(self, **filters: Any) -> Iterator[SubscriberRow]:
        from newsletter.audience.subscribers import iter_subscribers

        return iter_subscribers(self.services.engine, **filters)

    def export_csv(self, out: IO[str], list_slug: str, status: str | None = None) -> int:
        from newsletter.audience.export import export_csv

        return export_csv(self.services.engine, out, list_slug=list_slug, status=status)

    def export_data(self, email: str) -> dict[str, Any]:
        from newsletter.audience.portability import export_data

        return export_data(self.services.engine, email=email)

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


class Sending(Facade):
    """The send of an issue: plan, publish, rehearse, enqueue, deliver, status (delivery/)."""

    @property
    def engine(self) -> Any:
        return self.services.sender_engine

    def plan(self, slug: str, **options: Any) -> SendPlan:
        """What the send would do (delivery/dispatch.prepare_send); writes nothing."""
        from newsletter.delivery.dispatch import prepare_send

        return prepare_send(self.services.settings, self.engine, slug, **options)

    def publishes(self, check: bool | None) -> bool:
        from newsletter.delivery.dispatch import publishes

        return publishes(self.services.settings, check)

    def publish(self, plan: SendPlan, *, every_language: bool = False) -> Any:
        from newsletter.delivery.dispatch import publish

        return publish(self.services.settings, self.engine, plan, every_language=every_language)

    def dry_run(self, plan: SendPlan, resend_unknown: bool = False) -> DryRunReport:
        from newsletter.delivery.rehearsal import dry_run

        return dry_run(self.services.settings, self.engine, plan, resend_unknown)

    def test_copies(self, plan: SendPlan, addresses: Sequence[str]) -> list[TestCopy]:
        from newsletter.delivery.rehearsal import send_tests

        return send_tests(self.services.settings, self.engine, plan, addresses)

    def check_relay(self) -> None:
        from newsletter.delivery.dispatch import check_relay

        check_relay(self.services.settings)

    def enqueue(self, plan: SendPlan, at: Schedule | None = None) -> tuple[int, int]:
        """Store the editions and enqueue the deliveries (dispatch.begin_send): (id, added);
        `at`: scheduled for then instead of sending now."""
        from newsletter.delivery.dispatch import begin_send

        return begin_send(self.engine, self.services.settings, plan, at)

    def work(self, options: WorkerOptions, observer: Any = None) -> WorkerReport:
        """Run `newsletter worker` in this process until stopped (delivery/daemon.py)."""
        from newsletter.delivery.daemon import serve

        s = self.services
        return serve(s.settings, s.engine, self.engine, s.keyring.address_key, options,
                     observer)

    def relays_out(self) -> list[RelayOut]:
        """The relays out of every send now, in the shared view (delivery/relayview.py)."""
        from newsletter.delivery.relayview import relays_out

        return relays_out(self.services.engine)

    def workers(self, stale_after: float | None = None) -> list[WorkerInfo]:
        """The registered workers, live and gone (delivery/registry.py)."""
        from newsletter.delivery.registry import STALE_AFTER, workers

        return workers(self.services.engine, stale_after or STALE_AFTER)

    def prune_workers(self, stale_after: float | None = None) -> int:
        from newsletter.delivery.registry import STALE_AFTER, prune

        return prune(self.services.engine, stale_after or STALE_AFTER)

    def control(self, slug: str, action: str) -> tuple[str, int]:
        """Pause, resume or cancel an issue from any host (delivery/issues.control)."""
        from newsletter.delivery.issues import control

        return control(self.engine, slug, action)

    def deliver(self, plan: SendPlan, issue_id: int, progress: Any,
                **options: Any) -> tuple[RunResult, str]:
        """Run the workers and set the issue's final status (dispatch.deliver)."""
        from newsletter.delivery.dispatch import deliver

        return deliver(self.services.settings, self.engine, plan.slug, issue_id, plan,
                       progress, **options)

    def update_archive(self) -> str | None:
        from newsletter.delivery.dispatch import update_archive

        return update_archive(self.services.settings, self.engine)

    def remaining(self, issue_id: int) -> int:
        from newsletter.delivery.issues import remaining

        return remaining(self.engine, issue_id)

    def status(self, slug: str) -> IssueStatus | None:
        from newsletter.delivery.issues import issue_status

        return issue_status(self.services.engine, slug)

    def summaries(self) -> dict[str, IssueSummary]:
        from newsletter.delivery.issues import issue_summaries

        return issue_summaries(self.services.engine)

    def roll_up(self, older_than: timedelta, *, dry_run: bool = False) -> RollUpReport:
        """Keep the counts of issues sent more than `older_than` ago, drop their rows."""
        from newsletter.delivery.retention import roll_up

        return roll_up(self.services.engine, older_than, dry_run=dry_run)


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
        return recipient(s.engine, s.settings, list_slug, email)


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


class Outbox(Facade):
    """System mails: send what is due, list the queue (outbox.py)."""

    def deliver(self, *, include_deferred: bool = False,
                now: datetime | None = None) -> OutboxReport:
        from newsletter.outbox import deliver_outbox

        s = self.services
        return asyncio.run(deliver_outbox(s.settings, s.engine, now=now,
                                          include_deferred=include_deferred))

    def rows(self, status: str | None = None, limit: int = 100) -> list[OutboxRow]:
        from newsletter.outbox import list_outbox

        return list_outbox(self.services.engine, status=status, limit=limit)


class Bounces(Facade):
    """Bounces and complaints: the processor, the reports received (bounces/)."""

    def processor(self) -> Processor:
        from newsletter.bounces.receiver import Processor

        return Processor.from_settings(self.services.settings, self.services.engine)

    def recent(self, since: datetime, limit: int = 1000) -> list[ReportRow]:
        from newsletter.bounces.policy import recent_reports

        return recent_reports(self.services.engine, since, limit=limit)


class Archive(Facade):
    """The static archive of sent issues (archive/builder.py)."""

    def build(self, out: Path | None = None, clean: bool = False,
              now: datetime | None = None) -> BuildReport:
        from newsletter.archive.builder import build_archive

        s = self.services
        return build_archive(settings=s.settings, engine=s.engine, out=out, clean=clean, now=now)

