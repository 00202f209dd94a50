"""`newsletter maintenance`: the periodic clean-up (run it daily, e.g. from cron)."""

from __future__ import annotations

import click

from newsletter.audience.erasure import purge_pending
from newsletter.cli.context import AppContext, json_option, pass_app, print_json
from newsletter.errors import ValidationError


@click.command("maintenance")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; delete nothing.")
@json_option
@pass_app
def maintenance(app: AppContext, dry_run: bool, as_json: bool) -> None:
    """Purge subscriptions never confirmed after [audience] pending_days (default 30).

    A subscriber with no other subscription is deleted entirely: they never consented.
    """
    days = app.settings["audience"]["pending_days"]
    if days < 1:
        raise ValidationError("[audience] pending_days: must be at least 1")
    report = purge_pending(app.services.engine, days=days, dry_run=dry_run)
    if as_json:
        print_json(report)
        return
    verb = "would be" if dry_run else "were"
    click.echo(
        f"pending for more than {days} days: {report.subscriptions} subscriptions {verb} "
        f"purged, {report.subscribers} subscribers {verb} deleted entirely"
    )
    if dry_run:
        click.echo("dry run: nothing was written")


def attach(cli: click.Group) -> None:
    cli.add_command(maintenance)
