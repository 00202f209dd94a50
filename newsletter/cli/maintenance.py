"""`newsletter maintenance`: the periodic clean-up (run it daily, e.g. from cron)."""

from __future__ import annotations

from dataclasses import asdict

import click

from newsletter.cli.context import AppContext, json_option, pass_app, print_json
from newsletter.errors import ValidationError


@click.command("maintenance")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; delete nothing.")
@click.option("--vacuum", is_flag=True,
              help="SQLite: then rewrite the database file, so no deleted row survives in it.")
@json_option
@pass_app
def maintenance(app: AppContext, dry_run: bool, vacuum: bool, as_json: bool) -> None:
    """Purge subscriptions never confirmed after [audience] pending_days (default 30).

    A subscriber with no other subscription is deleted entirely: they never consented.
    """
    days = app.settings.audience.pending_days
    if days < 1:
        raise ValidationError("[audience] pending_days: must be at least 1")
    audience = app.services.audience
    if vacuum and not app.services.on_sqlite:
        audience.compact()  # says, in one line, what to do instead
    report = audience.purge_pending(days, dry_run=dry_run)
    vacuumed = audience.compact() if vacuum and not dry_run else None
    if as_json:
        print_json({**asdict(report), "vacuumed": vacuumed})
        return
    verb = "would be" if dry_run else "were"
    click.echo(
        f"pending for more than {days} days: {report.subscriptions} subscriptions {verb} "
        f"purged, {report.subscribers} subscribers {verb} deleted entirely"
    )
    if dry_run:
        click.echo("dry run: nothing was written")
    elif vacuum:
        click.echo("database file rewritten" + ("" if vacuumed else
                                               "; another process kept the WAL open"))
