"""`newsletter maintenance`: the periodic clean-up (run it daily, e.g. from cron)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from newsletter.cli.context import AppContext, json_option, pass_app, print_json
from newsletter.errors import ValidationError


@click.command("maintenance")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; delete nothing.")
@click.option("--vacuum", is_flag=True,
              help="SQLite: then rewrite the database file, so no deleted row survives in it.")
@click.option("--roll-up-after", "roll_up_after", metavar="AGE",
              help="Also roll up issues sent more than AGE ago (180d, 26w, 12h): keep their "
                   "counts by status and language, delete their per-recipient delivery rows.")
@json_option
@pass_app
def maintenance(app: AppContext, dry_run: bool, vacuum: bool, roll_up_after: str | None,
                as_json: bool) -> None:
    """Purge subscriptions never confirmed after [audience] pending_days (default 30).

    A subscriber with no other subscription is deleted entirely: they never consented.
    With --roll-up-after, old issues keep only their counts (see docs/operations.md).
    """
    from newsletter.delivery.retention import parse_age

    age = parse_age(roll_up_after) if roll_up_after is not None else None
    days = app.settings.audience.pending_days
    if days < 1:
        raise ValidationError("[audience] pending_days: must be at least 1")
    audience = app.services.audience
    if vacuum and not app.services.on_sqlite:
        audience.compact()  # says, in one line, what to do instead
    report = audience.purge_pending(days, dry_run=dry_run)
    rolled = app.services.sending.roll_up(age, dry_run=dry_run) if age is not None else None
    vacuumed = audience.compact() if vacuum and not dry_run else None
    if as_json:
        extra: dict[str, Any] = {}
        if rolled is not None:
            extra["rolled_up"] = {**asdict(rolled), "deliveries": rolled.deliveries}
        print_json({**asdict(report), "vacuumed": vacuumed, **extra})
        return
    verb = "would be" if dry_run else "were"
    click.echo(
        f"pending for more than {days} days: {report.subscriptions} subscriptions {verb} "
        f"purged, {report.subscribers} subscribers {verb} deleted entirely"
    )
    if rolled is not None:
        for issue in rolled.issues:
            click.echo(f"{issue.slug} (sent {issue.sent_at[:10]}): {issue.deliveries} delivery "
                       f"rows {verb} deleted, its counts kept")
        click.echo(f"sent before {rolled.cutoff[:16].replace('T', ' ')} UTC: "
                   f"{len(rolled.issues)} issues {verb} rolled up, "
                   f"{rolled.deliveries} delivery rows {verb} deleted")
    if dry_run:
        click.echo("dry run: nothing was written")
    elif vacuum:
        click.echo("database file rewritten" + ("" if vacuumed else
                                               "; another process kept the WAL open"))
