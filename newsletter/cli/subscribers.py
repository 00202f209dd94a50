"""`newsletter subscribers`: add, import, invite, list, export, remove, export-data."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from newsletter.audience.columns import parse_column_options
from newsletter.audience.importreport import ImportPlan, ImportReport
from newsletter.cli.context import AppContext, json_option, pass_app, print_json, print_table
from newsletter.db.models import SUBSCRIPTION_STATUSES, utcnow

consent_options = [
    click.option("--confirmed", is_flag=True,
                 help="Mark as confirmed (needs --consent-source): only with proof of consent."),
    click.option("--consent-source", default="", help="Where consent was given, kept as proof."),
]


def with_consent(f):
    for option in reversed(consent_options):
        f = option(f)
    return f


no_invite_option = click.option(
    "--no-invite", is_flag=True,
    help="Do not queue confirmation mails for the pending people now; "
         "`subscribers invite` queues them later.")


def _invite(app: AppContext, list_slug: str, added_since, quiet: bool = False):
    """Queue confirmation mails for the people just added as pending, with a progress bar."""
    progress = Progress(TextColumn("queueing confirmation mails"), BarColumn(),
                        TextColumn("{task.completed}"), TimeElapsedColumn(), transient=True,
                        disable=quiet, console=Console(stderr=True))
    with progress:
        task = progress.add_task("invite", total=None)
        return app.services.audience.invite(list_slug, added_since=added_since,
                                            progress=lambda n: progress.advance(task, n))


def _say_invited(queued: int, throttled: int) -> None:
    if queued:
        click.echo(f"{queued} confirmation mail(s) queued: `newsletter serve` sends them, "
                   "or run `newsletter outbox send`")
    if throttled:
        click.echo(f"{throttled} address(es) already had today's confirmation mails; "
                   "run `newsletter subscribers invite` tomorrow")


@click.group("subscribers")
def subscribers() -> None:
    """Subscribers: add, import CSV, invite, list, export, remove."""


@subscribers.command("add")
@click.argument("email")
@click.option("--list", "list_slug", required=True, help="List slug.")
@click.option("--name", default="", help="Display name.")
@click.option("--language", default="", help="Preferred language (default: the list's).")
@with_consent
@no_invite_option
@pass_app
def add(app: AppContext, email: str, list_slug: str, name: str, language: str,
        confirmed: bool, consent_source: str, no_invite: bool) -> None:
    """Add EMAIL to a list: pending, and sent a confirmation mail, unless --confirmed."""
    started = utcnow()
    counts = app.services.audience.add(email, list_slug, name=name, language=language,
                                       confirmed=confirmed, consent_source=consent_source)
    if counts.kept_unsubscribed:
        click.echo(f"{email} had unsubscribed from {list_slug}: they must opt in again")
    elif counts.subscribed or counts.confirmed:
        state = "confirmed" if confirmed else "pending"
        click.echo(f"{email} added to {list_slug} ({state})")
        if not confirmed and not no_invite:
            _say_invited(**_invite(app, list_slug, started, quiet=True).as_dict())
    else:
        click.echo(f"{email} is already on {list_slug}")


def _print_report(report: ImportReport, path: Path) -> None:
    d = report.as_dict()
    for p in report.rejected:
        click.echo(f"{path}:{p.line}: rejected {p.email or '(no address)'}: {p.reason}", err=True)
    for p in report.warnings:
        click.echo(f"{path}:{p.line}: warning {p.email}: {p.reason}", err=True)
    verb = "would be" if report.dry_run else "were"
    click.echo(
        f"{d['rows']} rows: {d['accepted']} accepted, {d['rejected']} rejected, "
        f"{d['duplicates_in_file']} duplicates merged"
    )
    click.echo(
        f"subscribers: {d['created']} {verb} created, {d['updated']} updated, "
        f"{d['unchanged']} unchanged; subscriptions: {d['subscribed']} new, "
        f"{d['confirmed']} confirmed, {d['kept_unsubscribed']} stayed unsubscribed"
    )
    if report.dry_run:
        click.echo("dry run: nothing was written")
    elif report.strict and not report.committed:
        click.echo("strict: nothing was written because some rows were rejected")


def _print_plan(plan: ImportPlan, as_json: bool, strict: bool) -> None:
    """The column mapping and rows per language, shown before anything is written."""
    if as_json:  # the warning is in the report's "notices"
        return
    if plan.warning and not strict:  # under --strict the import stops with its own error
        click.secho(f"WARNING: {plan.warning}", err=True, fg="yellow", bold=True)
    cols = plan.columns
    fields = ", ".join(f"{f} <- {cols[f]!r}" if cols[f] else f"{f}: (none)"
                       for f in ("email", "name", "language"))
    click.echo(f"columns: {fields}")
    if cols["attributes"]:
        click.echo(f"  kept as attributes: {', '.join(cols['attributes'])}")
    langs = ", ".join(f"{lang} {n}" for lang, n in plan.languages.items()) or "none"
    unknown = (f" (+{plan.unknown_language} with a language the list lacks)"
               if plan.unknown_language else "")
    click.echo(f"languages: {langs}{unknown}")


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--list", "list_slug", required=True, help="List slug.")
@click.option("--dry-run", is_flag=True, help="Report what would happen; write nothing.")
@click.option("--strict", is_flag=True, help="Write nothing if any row is rejected.")
@click.option("--fallback-to-default", is_flag=True,
              help="Give rows with a language the list lacks the list's default language.")
@click.option("--check-dns", is_flag=True,
              help="Also reject addresses whose domain has no mail server (slow: DNS lookups).")
@click.option("--column", "columns", multiple=True, metavar="FIELD=HEADER",
              help="Which column holds a field (email, name, language), e.g. "
                   "--column language=Idioma. Repeatable.")
@with_consent
@no_invite_option
@json_option
@pass_app
def import_(app: AppContext, file: Path, list_slug: str, dry_run: bool, strict: bool,
            fallback_to_default: bool, check_dns: bool, columns: tuple[str, ...],
            confirmed: bool, consent_source: str, no_invite: bool, as_json: bool) -> None:
    """Import subscribers from a CSV FILE (columns: email, name, language, any others).

    Without --confirmed the new subscribers are pending and each is queued a confirmation
    mail in their language (--no-invite holds them; `subscribers invite` sends them later).

    Headers are recognised in English, French and Spanish (Email/Courriel/Correo,
    Name/Nom/Nombre, Language/Langue/Idioma); the mapping and rows per language are printed
    before anything is written.
    """
    named = parse_column_options(columns)
    started = utcnow()
    total = max(file.stat().st_size, 1) if file.exists() else 1
    progress = Progress(TextColumn("importing"), BarColumn(), TextColumn("{task.completed} rows"),
                        TimeElapsedColumn(), transient=True, disable=as_json or total < 200_000,
                        console=Console(stderr=True))
    with progress:
        task = progress.add_task("import", total=None)
        report = app.services.audience.import_csv(
            file, list_slug, confirmed=confirmed, consent_source=consent_source,
            dry_run=dry_run, strict=strict, fallback_language=fallback_to_default,
            check_dns=check_dns, progress=lambda n: progress.advance(task, n), columns=named,
            on_plan=lambda plan: _print_plan(plan, as_json, strict))
    invited = None
    if report.committed and not confirmed and not no_invite:
        # Only the subscriptions this import made can be new and never asked.
        invited = (_invite(app, list_slug, started, quiet=as_json).as_dict()
                   if report.merge.subscribed else {"queued": 0, "throttled": 0})
    if as_json:
        print_json({**report.as_dict(), **({"invites": invited} if invited else {})})
    else:
        _print_report(report, file)
        if invited:
            _say_invited(**invited)
    if strict and report.rejected:
        sys.exit(1)


@subscribers.command("list")
@click.option("--list", "list_slug", help="Only this list.")
@click.option("--status", type=click.Choice(SUBSCRIPTION_STATUSES), help="Only this status.")
@click.option("--language", help="Only this language.")
@json_option
@pass_app
def list_(app: AppContext, list_slug: str | None, status: str | None, language: str | None,
          as_json: bool) -> None:
    """List subscriptions (one row per subscriber and list)."""
    rows = app.services.audience.subscribers(list_slug=list_slug, status=status,
                                             language=language)
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    table = Table("email", "name", "language", "list", "status", "since")
    count = 0
    for r in rows:
        table.add_row(r.email, r.name, r.language or "", r.list, r.status, r.created_at[:10])
        count += 1
    print_table(table)
    # piped, stdout holds only the rows, so that `| cut -f1` gives addresses and nothing else
    click.echo(f"{count} subscription(s)", err=not sys.stdout.isatty())


@subscribers.command("export")
@click.option("--list", "list_slug", required=True, help="List slug.")
@click.option("--status", type=click.Choice(SUBSCRIPTION_STATUSES), help="Only this status.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE instead of standard output.")
@pass_app
def export(app: AppContext, list_slug: str, status: str | None, output: Path | None) -> None:
    """Export a list as CSV, with formula-like cells neutralized for spreadsheets."""
    if output is None:
        app.services.audience.export_csv(sys.stdout, list_slug, status)
        return
    with output.open("w", encoding="utf-8", newline="") as fh:
        n = app.services.audience.export_csv(fh, list_slug, status)
    click.echo(f"{n} rows written to {output}", err=True)


@subscribers.command("remove")
@click.argument("email")
@click.option("--list", "list_slug",
              help="Unsubscribe from this list only. Without it, erase the person entirely.")
@json_option
@pass_app
def remove(app: AppContext, email: str, list_slug: str | None, as_json: bool) -> None:
    """Unsubscribe EMAIL from a list, or erase them (personal data deleted, address suppressed)."""
    if list_slug:
        app.services.audience.leave(email, list_slug)
        click.echo(f"{email} unsubscribed from {list_slug}")
        return
    report = app.services.audience.erase(email)
    if as_json:
        print_json(report)
        return
    if not report.subscribers:
        click.echo(f"no subscriber {email}; other traces of the address were removed")
    click.echo(
        f"{email} erased: {report.subscribers} subscriber, {report.subscriptions} "
        f"subscriptions, {report.deliveries} deliveries, {report.outbox} queued or sent mails, "
        f"{report.events_anonymised} events anonymised, {report.rows_scrubbed} other rows "
        "cleaned; a keyed hash stays on the suppression list"
    )
    if report.wal_emptied is False:
        click.echo("warning: another process kept the SQLite WAL open; run "
                   "`newsletter maintenance` later to empty it", err=True)


@subscribers.command("export-data")
@click.argument("email")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE instead of standard output.")
@pass_app
def export_data_(app: AppContext, email: str, output: Path | None) -> None:
    """Everything kept about EMAIL as JSON (GDPR access and portability requests)."""
    data = app.services.audience.export_data(email)
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    click.echo(f"data of {email} written to {output}", err=True)


@subscribers.command("invite")
@click.option("--list", "list_slug", required=True, help="List slug.")
@click.option("--dry-run", is_flag=True, help="Only count who would be asked.")
@json_option
@pass_app
def invite(app: AppContext, list_slug: str, dry_run: bool, as_json: bool) -> None:
    """Queue a confirmation mail for each pending subscriber of a list never asked to confirm.

    People who subscribed on the form, or were already asked, are not mailed again.
    """
    if dry_run:
        count = app.services.audience.count_never_asked(list_slug)
        if as_json:
            print_json({"would_queue": count})
        else:
            click.echo(f"{count} pending subscriber(s) of {list_slug} would be asked to confirm")
        return
    result = _invite(app, list_slug, None, quiet=as_json).as_dict()
    if as_json:
        print_json(result)
    elif not any(result.values()):
        click.echo(f"nobody to ask: every pending subscriber of {list_slug} was already asked")
    else:
        _say_invited(**result)
