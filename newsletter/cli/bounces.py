"""`newsletter bounces`: receive bounces and complaints, process a mailbox, list what came in.

    newsletter bounces serve                 SMTP receiver for the bounce domain (its MX)
    newsletter bounces process PATH...       Maildir folders, mbox files or .eml files
    newsletter bounces list --since 30       reports of the last 30 days
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from newsletter.bounces.policy import Outcome
from newsletter.bounces.receiver import (
    BounceServer,
    Processor,
    check_paths,
    process_paths,
    summarize,
)
from newsletter.cli.context import (
    AppContext,
    json_option,
    pass_app,
    print_json,
    run_in_foreground,
)


def _processor(app: AppContext) -> Processor:
    return app.services.bounces.processor()


@click.group("bounces")
def bounces() -> None:
    """Bounces and complaints: receive them, process a mailbox, list them.

    Hard bounces and complaints suppress the address at once (a complaint also unsubscribes
    from that list); soft bounces suppress after [bounces] soft_limit of them within
    soft_days (5 within 7 by default); 5.7.x policy blocks are only recorded.
    """


@bounces.command("serve", short_help="Run the SMTP receiver for bounce addresses.")
@click.option("--host", help="Address to listen on. Default: [bounces] host (127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535),
              help="Port to listen on (25 for a public MX). Default: [bounces] port (2525).")
@pass_app
def serve(app: AppContext, host: str | None, port: int | None) -> None:
    """Run the SMTP receiver for bounce addresses until Ctrl-C (or SIGTERM).

    Only bounces@DOMAIN and bounces+TOKEN@DOMAIN (from [bounces] local_part and domain) are
    accepted; any other recipient gets 550. Prints one line per report: kind, status,
    delivery, masked address, action taken.
    """
    section = app.settings.bounces

    def show(outcome: Outcome) -> None:
        click.echo(f"{datetime.now(UTC).astimezone():%H:%M:%S} {outcome.line()}")

    def warn(message: str) -> None:
        click.echo(f"error: {message}", err=True)

    server = BounceServer(_processor(app), host=host or section.host,
                          port=section.port if port is None else port,
                          on_outcome=show, on_error=warn)
    processor = server.handler.processor
    run_in_foreground(server, lambda: f"Receiving bounces for {processor.prefix}..."
                                      f"{processor.suffix} on {server.host}:{server.port} "
                                      "(Ctrl-C to stop)")
    click.echo(f"Stopped: {server.count} report(s) received.", err=True)


@bounces.command("process", short_help="Process a Maildir, mbox or .eml files.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Only the summary, no line per report.")
@json_option
@pass_app
def process(app: AppContext, paths: tuple[Path, ...], quiet: bool, as_json: bool) -> None:
    """Process bounces already in a mailbox: Maildir folders, mbox files or .eml files.

    Safe to run again on the same messages (each report counts once), e.g. from cron.
    The files are only read, never moved or deleted.
    """
    check_paths(paths)
    processor = _processor(app)
    outcomes: list[Outcome] = []
    messages = []
    for name, outcome in process_paths(processor, paths):
        outcomes.append(outcome)
        if as_json:
            messages.append({"message": name, **asdict(outcome)})
        elif not quiet:
            click.echo(f"{outcome.line()}  {name}")
    summary = summarize(outcomes)
    if as_json:
        print_json({**summary, "messages": messages})
        return
    kinds = ", ".join(f"{n} {k}" for k, n in summary["by_kind"].items()) or "none"
    actions = ", ".join(f"{n} {a}" for a, n in summary["by_action"].items()) or "nothing"
    click.echo(f"{summary['reports']} report(s): {kinds}. Actions: {actions}.")


@bounces.command("list", short_help="Show recent bounces and complaints.")
@click.option("--since", "days", type=click.FloatRange(0, min_open=True), default=7.0,
              show_default=True, help="Only reports of the last DAYS days.")
@click.option("--limit", type=click.IntRange(1, 100000), default=1000, show_default=True)
@json_option
@pass_app
def list_(app: AppContext, days: float, limit: int, as_json: bool) -> None:
    """Show the reports processed recently, newest first (addresses masked)."""
    since = datetime.now(UTC) - timedelta(days=days)
    rows = app.services.bounces.recent(since, limit=limit)
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    if not rows:
        click.echo(f"no bounce or complaint in the last {days:g} day(s)")
        return
    for r in rows:
        note = f" ({r.note})" if r.note else ""
        click.echo(f"{r.at.astimezone():%Y-%m-%d %H:%M}  {r.kind:<9} {r.status or '-':<7} "
                   f"{r.issue or '-':<16} {r.address or '-':<28} {r.outcome}{note}"
                   + (f"  {r.diagnostic[:80]}" if r.diagnostic else ""))
