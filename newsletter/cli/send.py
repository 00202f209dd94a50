"""`newsletter send SLUG`: parse, call delivery, print."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from newsletter.cli.context import AppContext, json_option, pass_app, print_json
from newsletter.delivery import dispatch
from newsletter.delivery.concurrency import Concurrency, concurrency
from newsletter.delivery.relays import relay_report
from newsletter.errors import ValidationError

if TYPE_CHECKING:
    from newsletter.delivery.crew import Crew
    from newsletter.delivery.schedule import Schedule
    from newsletter.facades import Sending

EXIT_PAUSED = 130


def _addresses(value: str | None) -> list[str]:
    found = [a.strip() for a in (value or "").split(",") if a.strip()]
    for address in found:
        if "@" not in address:
            raise ValidationError(f"--test-to: {address!r} is not an email address")
    return found


def _show_plan(console: Console, plan: dispatch.SendPlan) -> int:
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    new = plan.plan.total if plan.plan else 0
    if plan.resuming:
        console.print(f"Resuming {plan.slug}: {plan.remaining} deliveries not settled yet.")
    if plan.plan and plan.plan.total:
        table = Table("language", "recipients", title=f"{plan.slug} to list "
                      f"{plan.mailing_list.slug}: {new} new recipients")
        for lang, n in sorted(plan.plan.recipients.items()):
            table.add_row(lang, str(n))
        console.print(table)
        for lang, n in sorted(plan.plan.fallbacks.items()):
            target = plan.plan.mapping[lang]
            console.print(f"{n} subscribers in {lang} get the {target} edition (fallback)")
    return new + plan.remaining


class _Bar:
    """The progress bar: sent, deferred, failed, rate and ETA. Its total is the rows waiting
    when the send starts, and the `expected` rows the enqueue still adds meanwhile (the
    plan's count) until it says how many it added."""

    def __init__(self, console: Console, total: int, enabled: bool, expected: int = 0) -> None:
        self.base, self.expected = total, max(0, expected)
        total += self.expected
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("sent {task.fields[sent]} deferred {task.fields[deferred]} "
                       "failed {task.fields[failed]} {task.fields[rate]:.0f} msg/s"),
            TimeRemainingColumn(), console=console, disable=not enabled)
        self.task = self.progress.add_task("sending", total=total, sent=0, deferred=0,
                                           failed=0, rate=0.0)

    def enqueued(self, added: int, done: bool) -> None:
        """The enqueue's rows after the first chunk: `added` so far; the exact total once
        `done` (the plan's count may be off by a subscriber who left or came meanwhile)."""
        self.progress.update(self.task, total=self.base + (
            added if done else max(added, self.expected)))

    def __call__(self, delta: Mapping[str, int]) -> None:
        self.counts.update(delta)
        done = sum(self.counts[k] for k in ("sent", "failed", "unknown"))
        rate = self.counts["sent"] / max(1e-6, time.monotonic() - self.started)
        self.progress.update(self.task, completed=done, sent=self.counts["sent"],
                             deferred=self.counts["deferred"], failed=self.counts["failed"],
                             rate=rate)


@click.command("send")
@click.argument("slug")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Build every message, send none, report sizes.")
@click.option("--test-to", metavar="A@X,B@Y", help="Send real test copies (every language) "
              "to these addresses only; deliveries are not touched.")
@click.option("--fallback-language", metavar="LANG",
              help="Edition for subscribers whose language the issue lacks.")
@click.option("--force", is_flag=True, help="Send an already sent issue to those not mailed yet.")
@click.option("--resend-unknown", is_flag=True,
              help="Mail again the deliveries whose outcome a crash left unknown.")
@click.option("--publish-check/--no-publish-check", default=None,
              help="Publish the issue's web version and pictures to the archive folder and "
              "check that they answer before sending, then update the archive after it "
              "(default: [send] publish_check, on). Turn off if you publish by other means.")
@click.option("--workers", type=click.IntRange(1, 64),
              help="Sender processes ([smtp] workers; default: one per two CPU cores, or "
              "one when DKIM signer processes sign, which get the cores the senders leave).")
@click.option("--connections", type=click.IntRange(1, 500),
              help="SMTP connections per process ([smtp] connections).")
@click.option("--rate", type=click.FloatRange(0), help="Messages per second, 0 = unlimited.")
@click.option("--detach", is_flag=True, help="Return once the deliveries are queued and leave "
              "the sending to `newsletter worker` processes (on any host).")
@click.option("--at", "at", metavar="WHEN", help='Queue the issue now, sent by the workers at '
              'WHEN: "2026-12-01 09:00 Europe/Brussels", or an ISO time with its offset.')
@json_option
@pass_app
def send(app: AppContext, slug: str, yes: bool, dry_run: bool, test_to: str | None,
         fallback_language: str | None, force: bool, resend_unknown: bool,
         publish_check: bool | None, workers: int | None, connections: int | None,
         rate: float | None, detach: bool, at: str | None, as_json: bool) -> None:
    """Send issue SLUG to every confirmed subscriber of its list, each in their language.

    By default this process sends and shows the progress. With --detach or --at it only
    queues the deliveries, and `newsletter worker` processes send them.
    """
    schedule = _schedule(at, detach, workers, connections, rate)
    app.services.require_schema()
    sending = app.services.sending
    console = Console(quiet=as_json)
    options = {"fallback": fallback_language, "force": force, "resend_unknown": resend_unknown}
    if test_to is None and not dry_run and not detach and schedule is None:
        # The worker processes start now: their start-up overlaps the planning and enqueue.
        chosen = concurrency(sending.services.settings, workers, connections)
        with (sending.start_workers(chosen.workers, chosen.signers)
              or contextlib.nullcontext()) as crew:
            _send(sending, console, sending.plan(slug, **options), chosen, crew, yes=yes,
                  as_json=as_json, rate=rate, resend_unknown=resend_unknown,
                  publish_check=publish_check)
        return
    plan = sending.plan(slug, **options)
    if test_to is not None:
        addresses = _addresses(test_to)
        if not addresses:
            raise ValidationError("--test-to: give at least one address")
        # A test copy is where the editor looks at the pictures: publish and check first.
        if sending.publishes(publish_check):
            sending.publish(plan, every_language=True)
        results = sending.test_copies(plan, addresses)
        if as_json:
            print_json([dataclasses.asdict(copy) for copy in results])
        for copy in results if not as_json else ():
            outcome = copy.reply if copy.status == "sent" else f"{copy.status}: {copy.reply}"
            console.print(f"test copy ({copy.language}) to {copy.to}: {outcome}",
                          highlight=False)
        return
    if dry_run:
        report = sending.dry_run(plan, resend_unknown)
        if as_json:
            print_json(report)
            return
        count = sum(report.messages.values())
        per = ", ".join(f"{n} in {lang}" for lang, n in sorted(report.messages.items()))
        console.print(f"dry run: {count} messages built ({per or 'none'}), "
                      f"{report.total_bytes} bytes, smallest {report.smallest}, "
                      f"largest {report.largest}; nothing was sent", highlight=False)
        return
    _enqueue_only(sending, console, plan, schedule, yes=yes, as_json=as_json,
                  publish_check=publish_check)


def _schedule(at: str | None, detach: bool, workers: int | None, connections: int | None,
              rate: float | None) -> Schedule | None:
    """The --at time, after refusing flags that only a send run here would use."""
    from newsletter.delivery.schedule import parse_at

    if detach or at is not None:
        local = [f for f, v in (("--workers", workers), ("--connections", connections),
                                ("--rate", rate)) if v is not None]
        if local:
            raise ValidationError(f"{', '.join(local)}: a detached or scheduled send is made "
                                  f"by `newsletter worker`; give those to the workers")
    return parse_at(at) if at is not None else None


def _enqueue_only(sending: Sending, console: Console, plan: dispatch.SendPlan,
                  schedule: Schedule | None, *, yes: bool, as_json: bool,
                  publish_check: bool | None) -> None:
    """--detach and --at: queue the deliveries and return; the workers send them."""
    from newsletter.delivery.schedule import describe

    if schedule is not None and plan.issue is not None and plan.issue.status in (
            "sending", "paused"):
        raise ValidationError(f"--at: issue {plan.slug!r} is already {plan.issue.status}; "
                              f"`newsletter issue cancel {plan.slug}` first to send it later")
    total = _show_plan(console, plan)
    when = describe(schedule.when, schedule.zone) if schedule else None
    if not yes:
        click.confirm(f"Queue {plan.slug} for {total} recipients"
                      + (f", sent at {when}?" if when else "?"), abort=True)
    if sending.publishes(publish_check):
        sending.publish(plan)
    issue_id, _added = sending.enqueue(plan, schedule)
    queued = sending.remaining(issue_id)
    if as_json:
        print_json({"issue": plan.slug, "status": "scheduled" if schedule else "sending",
                    "queued": queued, "scheduled_at": schedule.when if schedule else None,
                    "zone": schedule.zone if schedule else None,
                    "warnings": list(plan.warnings)})
        return
    start = f"at {when}" if when else "now"
    console.print(f"{queued} deliveries queued; run `newsletter worker` (any host, any "
                  f"number) to send them; they start {start}. Follow with `newsletter issue "
                  f"status {plan.slug}`.", highlight=False)
    console.print("The archive's indexes and feeds list the issue once the archive is rebuilt "
                  "after the send: a `newsletter worker --build-archive` does it, else run "
                  "`newsletter archive build` then.", highlight=False)


def _send(sending: Sending, console: Console, plan: dispatch.SendPlan, chosen: Concurrency,
          crew: Crew | None, *, yes: bool, as_json: bool, rate: float | None,
          resend_unknown: bool, publish_check: bool | None) -> None:
    total = _show_plan(console, plan)
    if total == 0 and not resend_unknown:
        console.print("Nothing to send: every recipient of this issue is settled.")
        if as_json:
            print_json({"issue": plan.slug, "status": "nothing to send", "sent": 0,
                        "deferred": 0, "failed": 0, "unknown": 0,
                        "warnings": list(plan.warnings), "interrupted": False, "seconds": 0})
        return
    if not yes:
        click.confirm(f"Send {plan.slug} to {total} recipients?", abort=True)
    sending.check_relay()
    publishing = sending.publishes(publish_check)
    if publishing:
        sending.publish(plan)
    # The first chunk of the enqueue; the rest is added while the first messages go out.
    issue_id, added = sending.enqueue(plan, whole=False)
    console.print(f"Sending with {chosen.describe()}.", highlight=False)
    bar = _Bar(console, sending.remaining(issue_id), console.is_terminal and not as_json,
               expected=(plan.plan.total if plan.plan else 0) - added)
    with bar.progress:
        result, status = sending.deliver(
            plan, issue_id, bar, workers=chosen.workers, connections=chosen.connections,
            rate=rate, resend_unknown=resend_unknown, on_enqueued=bar.enqueued, crew=crew)
    counts = {k: result.counts.get(k, 0) for k in ("sent", "deferred", "failed", "unknown")}
    elapsed = time.monotonic() - bar.started
    archive_problem = sending.update_archive() if publishing else None
    if archive_problem:
        console.print(f"[yellow]warning:[/] {archive_problem}", highlight=False)
    relays = relay_report(result.counts)  # empty with a single relay
    if as_json:
        print_json({"issue": plan.slug, "status": status, **counts,
                    "warnings": list(plan.warnings),
                    "interrupted": result.interrupted, "seconds": round(elapsed, 3),
                    "workers": chosen.workers, "connections": chosen.connections,
                    "signers": chosen.signers,
                    **({"relays": {r.name: {"sent": r.sent, "taken_out": r.taken_out}
                                   for r in relays}} if relays else {})})
    else:
        line = ", ".join(f"{k} {v}" for k, v in counts.items())
        console.print(f"{plan.slug}: {line} in {elapsed:.1f}s; issue is {status}",
                      highlight=False)
        if relays:
            console.print("sent through each relay: "
                          + ", ".join(r.describe() for r in relays), highlight=False)
        if status == "cancelled":
            console.print("Cancelled: the deliveries still waiting were skipped.")
        elif result.interrupted:
            console.print(f"Paused. Run `newsletter send {plan.slug}` again to resume.")
        elif status == "sending":
            console.print("Some deliveries wait for a retry: run `newsletter send "
                          f"{plan.slug}` again later (see `newsletter issue status {plan.slug}`).")
    if result.interrupted:
        sys.exit(EXIT_PAUSED)
