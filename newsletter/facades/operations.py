"""The facades for moving mail and pages: sending, the outbox, bounces, the archive."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.facades.base import Facade

if TYPE_CHECKING:
    from newsletter.archive.builder import BuildReport
    from newsletter.bounces.policy import ReportRow
    from newsletter.bounces.receiver import Processor
    from newsletter.delivery.crew import Crew
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

        check_relay(self.services.settings, self.services.engine)

    def enqueue(self, plan: SendPlan, at: Schedule | None = None, *,
                whole: bool = True) -> tuple[int, int]:
        """Store the editions and enqueue the deliveries (dispatch.begin_send): (id, added);
        `at`: scheduled for then instead of sending now; not `whole`: only the first chunk,
        `deliver` adds the rest while the workers send."""
        from newsletter.delivery.dispatch import begin_send

        return begin_send(self.services.settings, self.engine, plan, at, whole=whole)

    def work(self, options: WorkerOptions, observer: Any = None) -> WorkerReport:
        """Run `newsletter worker` in this process until stopped (delivery/daemon.py)."""
        from newsletter.delivery.daemon import serve

        s = self.services
        archive = s.archive.after_send if options.build_archive else None
        return serve(s.settings, s.engine, self.engine, s.keyring.address_key, options,
                     observer, archive)

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

    def start_workers(self, workers: int, signers: int = 0) -> Crew | None:
        """The processes of a send of `workers` processes, each with `signers` DKIM signer
        processes, started now so that their start-up overlaps the planning (crew.Crew; pass
        it to `deliver`, close it in any case); None for one worker without signers, which
        runs in this process."""
        from newsletter.delivery.crew import Crew

        if workers <= 1 and not signers:
            return None
        return Crew(self.services.settings, workers, signers)

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


class Outbox(Facade):
    """System mails: send what is due, list the queue (outbox.py)."""

    def deliver(self, *, include_deferred: bool = False,
                now: datetime | None = None) -> OutboxReport:
        return asyncio.run(self.deliver_async(include_deferred=include_deferred, now=now))

    async def deliver_async(self, **options: Any) -> OutboxReport:
        """The same, in a running event loop (the web app's outbox worker)."""
        from newsletter.outbox import deliver_outbox

        return await deliver_outbox(self.services.settings, self.services.engine, **options)

    def backlog(self) -> dict[str, int]:
        from newsletter.outbox import backlog

        return backlog(self.services.engine)

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
        from newsletter.archive.buildlock import building

        s = self.services
        with building(out or s.settings.path(s.settings.archive.out), wait=True):
            return build_archive(settings=s.settings, engine=s.engine, out=out, clean=clean,
                                 now=now)

    def after_send(self) -> BuildReport | None:
        """A worker's rebuild once an issue is sent: the same build, refusing (writing
        nothing) where the workspace's pictures or statements are missing; None when another
        process is building in the folder (archive/buildlock.py): try again later."""
        from newsletter.archive.builder import build_archive
        from newsletter.archive.buildlock import building

        s = self.services
        with building(s.settings.path(s.settings.archive.out)) as mine:
            if not mine:
                return None
            return build_archive(settings=s.settings, engine=s.engine, whole=True)

    def check_output(self) -> None:
        """OutputError unless this process can write the [archive] out folder."""
        from newsletter.archive.writer import check_writable

        settings = self.services.settings
        check_writable(settings.path(settings.archive.out))
