"""`newsletter outbox`: look at and flush the queue of system mails (confirmations and such)."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.table import Table

from newsletter.audience.jobs import run_pending
from newsletter.cli.context import AppContext, json_option, pass_app, print_json, print_table
from newsletter.db.models import OUTBOX_STATUSES


@click.group("outbox")
def outbox() -> None:
    """System mails waiting for the SMTP relay: list, send."""


@outbox.command("send")
@click.option("--retry-now", is_flag=True, help="Also retry deferred mails before their time.")
@json_option
@pass_app
def send(app: AppContext, retry_now: bool, as_json: bool) -> None:
    """Send every due mail once (serve does this on its own every few seconds)."""
    # System mails carry signed links: a deployment without a secret key is refused here too.
    app.services.keyring  # noqa: B018
    # Form requests whose web process died before running them (normally none).
    run_pending(app.optin)
    totals = {"sent": 0, "deferred": 0, "failed": 0}
    while True:
        report = app.services.outbox.deliver(include_deferred=retry_now)
        for key in totals:
            totals[key] += getattr(report, key)
        # A full batch may mean more is due; stop when a pass sends nothing new.
        if report.total < 100 or report.sent == 0:
            break
    if as_json:
        print_json(totals)
        return
    click.echo(f"sent {totals['sent']}, deferred {totals['deferred']}, failed {totals['failed']}")


@outbox.command("list")
@click.option("--status", type=click.Choice(OUTBOX_STATUSES), help="Only this status.")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@json_option
@pass_app
def list_(app: AppContext, status: str | None, limit: int, as_json: bool) -> None:
    """Show the newest outbox messages (without their content)."""
    rows = app.services.outbox.rows(status=status, limit=limit)
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    if not rows:
        click.echo("the outbox is empty")
        return
    table = Table("id", "kind", "recipient", "status", "attempts", "next attempt", "last error")
    for r in rows:
        when = r.next_attempt_at.strftime("%Y-%m-%d %H:%M") if r.next_attempt_at else ""
        table.add_row(
            str(r.id),
            r.kind,
            r.recipient,
            r.status,
            str(r.attempts),
            when,
            (r.last_error or "")[:60],
        )
    print_table(table)
