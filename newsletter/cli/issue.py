"""`newsletter issue new|check|preview|status|pause|resume|cancel`: write, check and look at an
issue, follow its sending and control it from any host."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from newsletter.cli.context import AppContext, json_option, pass_app, print_json, print_table
from newsletter.compose import ComposeError, check_issue, load_issue
from newsletter.compose.checkrules import Finding
from newsletter.compose.checks import CheckReport
from newsletter.compose.preview import PreviewServer, watched_folders, write_preview
from newsletter.compose.scaffold import copy_issue, new_issue
from newsletter.compose.source import SLUG_RE
from newsletter.compose.translations import mark_translated, source_language

if TYPE_CHECKING:
    from newsletter.delivery.issues import IssueSummary


def _languages(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


def _list_languages(app: AppContext, list_slug: str) -> list[str] | None:
    """The list's languages from the database, or None when it cannot be read."""
    url = app.settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None  # do not create an empty database file just to look
    try:
        return app.unchecked_services.compose.list_languages(list_slug)
    except SQLAlchemyError:
        return None


@click.group("issue")
def issue() -> None:
    """Write, check and preview issues (issues/<slug>/<lang>.md)."""


@issue.command("new")
@click.argument("slug")
@click.option("--lang", "langs", default="en,fr,es", show_default=True,
              help="Comma-separated languages, one Markdown file each.")
@click.option("--list", "list_slug", default="news", show_default=True, help="Target list slug.")
@click.option("--from", "previous", metavar="LAST",
              help="Copy issue LAST (files, images, settings): number + 1, date cleared.")
@json_option
@pass_app
def new(app: AppContext, slug: str, langs: str, list_slug: str, previous: str | None,
        as_json: bool) -> None:
    """Write a skeleton issue: issue.toml and one file per language (or a copy of LAST)."""
    workspace = app.settings.workspace
    given = [f"--{name}" for name in ("lang", "list") if click.get_current_context()
             .get_parameter_source("langs" if name == "lang" else "list_slug")
             is not click.core.ParameterSource.DEFAULT]
    if previous is not None and given:
        raise click.UsageError(f"--from copies {previous}'s languages and list: drop "
                               f"{' and '.join(given)}")
    if previous is not None:
        copied = copy_issue(workspace, slug, previous)
        paths, number, warnings = copied.files, copied.number, copied.warnings
    else:
        paths = new_issue(workspace, slug, _languages(langs), list_slug, dt.date.today())
        number, warnings = None, []
    shown = [str(p.relative_to(workspace)) for p in paths]
    if as_json:
        print_json({"slug": slug, "files": shown, "copied_from": previous,
                    "number": list(number) if number else None, "warnings": warnings})
        return
    for path in shown:
        click.echo(path)
    if number:
        click.echo(f"number {number[0]} -> {number[1]} (volume kept: change it if your "
                   "numbering restarts each year); date cleared: set it before sending")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if previous:
        click.echo(f"Write the new subject and text: `newsletter issue check {slug}` warns "
                   f"while a subject is still the one of {previous}.")


def _print_report(report: CheckReport) -> None:
    for finding in report.findings:
        click.echo(finding.format(), err=finding.severity == "error")
    verdict = "ok" if report.ok else "not ready to send"
    click.echo(f"{report.errors} error(s), {report.warnings} warning(s): {verdict}")


@issue.command("check")
@click.argument("slug")
@json_option
@pass_app
def check(app: AppContext, slug: str, as_json: bool) -> None:
    """Check an issue before sending; exit 1 when any error is found."""
    try:
        source = load_issue(app.settings.workspace, slug, keep_going=True)
    except ComposeError as exc:
        if not exc.file:
            raise
        report = CheckReport([Finding("error", "front-matter", exc.file, exc.line, exc.message)])
    else:
        languages = _list_languages(app, source.list_slug) if source.list_slug else None
        report = check_issue(source, app.settings, languages)
    if as_json:
        print_json({"slug": slug, **report.as_dict()})
    else:
        _print_report(report)
    if not report.ok:
        raise SystemExit(1)


def _default_language(app: AppContext, list_slug: str) -> str:
    """The list's default language from the database, else [newsletter] default_language."""
    url = app.settings.database_url
    if list_slug and not (url.startswith("sqlite:///")
                          and not Path(url.removeprefix("sqlite:///")).exists()):
        try:
            found = app.unchecked_services.compose.default_language(list_slug)
            if found:
                return found
        except SQLAlchemyError:
            pass
    return str(app.settings.newsletter.default_language)


@issue.command("translated")
@click.argument("slug")
@click.option("--lang", "lang", required=True, help="The translation now up to date.")
@click.option("--source", "origin", metavar="LANG", help="The language it is translated from "
              "(default: as recorded, issue.toml's source_language, or the list's language).")
@json_option
@pass_app
def translated(app: AppContext, slug: str, lang: str, origin: str | None, as_json: bool) -> None:
    """Mark <lang>.md as translated from the source's current text (issue check stops warning)."""
    source = load_issue(app.settings.workspace, slug)
    if lang not in source.editions:
        raise ComposeError(f"issue {slug!r} has no {lang}.md")
    origin = origin or source_language(source, lang, _default_language(app, source.list_slug))
    path = mark_translated(source, lang, origin)
    shown = source.display(path)
    if as_json:
        print_json({"slug": slug, "language": lang, "source": origin, "file": shown})
        return
    click.echo(f"{shown}: marked as translated from the current {origin}.md")


def _summaries(app: AppContext) -> dict[str, IssueSummary]:
    """Issue statuses and delivery counts from the database ({} when there is none yet)."""
    url = app.settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return {}
    app.services.require_schema()
    return app.services.sending.summaries()


def _folder_facts(workspace: Path, slug: str) -> tuple[list[str], str | None]:
    """Languages and date of issues/<slug>/, read leniently: a broken file does not hide it."""
    try:
        source = load_issue(workspace, slug, keep_going=True)
    except ComposeError:
        return [], None
    dates = {str(e.front["date"]) for e in source.editions.values() if "date" in e.front}
    return list(source.languages), min(dates) if dates else None


@issue.command("list")
@json_option
@pass_app
def list_issues(app: AppContext, as_json: bool) -> None:
    """Every issue (folders and sent ones): status, languages, date and delivery counts."""
    workspace = app.settings.workspace
    known = _summaries(app)
    folders = sorted(p.name for p in (workspace / "issues").glob("*")
                     if p.is_dir() and SLUG_RE.fullmatch(p.name))
    rows: list[dict[str, Any]] = []
    for slug in sorted(set(folders) | set(known)):
        languages, date = _folder_facts(workspace, slug) if slug in folders else ([], None)
        status, counts, rolled_up = known.get(slug, ("draft", {}, None))
        rows.append({"slug": slug, "status": status, "languages": languages, "date": date,
                     "folder": slug in folders, "deliveries": sum(counts.values()),
                     "counts": counts, "rolled_up": rolled_up})
    rows.sort(key=lambda r: (r["date"] or "9999", r["slug"]))
    if as_json:
        print_json(rows)
        return
    table = Table("issue", "status", "languages", "date", "sent", "failed", "waiting")
    for r in rows:
        c = r["counts"]
        waiting = sum(c.get(k, 0) for k in ("queued", "deferred", "sending"))
        status = r["status"] + (f" (rolled up on {r['rolled_up'][:10]})" if r["rolled_up"] else "")
        table.add_row(r["slug"] + ("" if r["folder"] else " (no folder)"), status,
                      ",".join(r["languages"]) or "-", r["date"] or "-", str(c.get("sent", 0)),
                      str(c.get("failed", 0)), str(waiting))
    print_table(table)


@issue.command("preview")
@click.argument("slug")
@click.option("--lang", "langs", help="Languages to preview (default: all of the issue's).")
@click.option("--as", "as_email", metavar="EMAIL", help="Personalize for this subscriber.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: preview/<slug> in the workspace).")
@click.option("--serve", is_flag=True, help="Serve on localhost and rebuild on every change.")
@click.option("--port", default=8001, show_default=True, help="Port for --serve (0: any).")
@json_option
@pass_app
def preview(app: AppContext, slug: str, langs: str | None, as_email: str | None,
            out: Path | None, serve: bool, port: int, as_json: bool) -> None:
    """Write DIR/<lang>.html and DIR/<lang>.txt and print their paths."""
    settings = app.settings
    target = out or settings.workspace / "preview" / slug
    languages = _languages(langs) or None
    slots = None
    if as_email:
        source = load_issue(settings.workspace, slug)
        who = app.services.compose.recipient(source.list_slug, as_email)
        slots = who.slots
        if languages is None and who.language in source.editions:
            languages = [who.language]

    def build() -> list[Path]:
        return write_preview(settings.workspace, slug, settings, languages, target, slots)

    if serve:
        server = PreviewServer(target, watched_folders(settings.workspace, slug), build)
        server.serve("127.0.0.1", port, lambda url: click.echo(f"serving {url} (Ctrl-C stops)"))
        return
    paths = build()
    if as_json:
        print_json({"slug": slug, "files": [str(p) for p in paths]})
        return
    for path in paths:
        click.echo(str(path))


@issue.command("status")
@click.argument("slug")
@json_option
@pass_app
def status(app: AppContext, slug: str, as_json: bool) -> None:
    """Deliveries of issue SLUG by status and language, and the last errors."""
    from newsletter.errors import NotFoundError

    app.services.require_schema()
    report = app.services.sending.status(slug)
    if report is None:
        raise NotFoundError(f"issue {slug!r} has not been sent yet")
    if as_json:
        print_json(report)
        return
    console = Console()
    console.print(f"{slug}: {report.status}")
    if report.rolled_up:
        console.print(f"rolled up on {report.rolled_up[:10]}: the counts were kept, the "
                      f"per-recipient rows deleted", highlight=False)
    if report.scheduled_at is not None:
        from newsletter.delivery.schedule import describe

        console.print(f"scheduled for {describe(report.scheduled_at, report.zone)}",
                      highlight=False)
    for w in report.workers:
        console.print(f"worker {w['host']} pid {w['pid']}: {w['rate']:.1f} msg/s, "
                      f"{w['sent']} sent", highlight=False)
    shown = [s for s in report.counts if report.counts[s] or s not in ("sending",)]
    table = Table("language", *shown)
    for lang, counts in sorted(report.by_language.items()):
        table.add_row(lang, *(str(counts.get(s, 0)) for s in shown))
    table.add_row("all", *(str(report.counts[s]) for s in shown))
    print_table(table)
    for err in report.last_errors:
        console.print(f"{err['status']} {err['email']} ({err['language']}, "
                      f"{err['attempts']} attempts): {err['reply']}", highlight=False)


def _control(action: str, done: str) -> Any:
    @click.argument("slug")
    @json_option
    @pass_app
    def command(app: AppContext, slug: str, as_json: bool) -> None:
        status, skipped = app.services.sending.control(slug, action)
        if as_json:
            print_json({"issue": slug, "status": status, "skipped": skipped})
            return
        more = f"; {skipped} deliveries not sent were skipped" if skipped else ""
        click.echo(f"{slug}: {status}{more}. {done}")

    return command


issue.command("pause", help="Pause issue SLUG on every worker and host (within 2 seconds): "
              "messages in flight finish, the rest wait.")(
    _control("pause", "Workers stop within 2 seconds; `newsletter issue resume` goes on."))
issue.command("resume", help="Resume a paused issue SLUG: the workers send it again.")(
    _control("resume", "Running `newsletter worker` processes go on with it."))
issue.command("cancel", help="Cancel issue SLUG (scheduled, sending or paused): the "
              "deliveries still waiting are skipped.")(
    _control("cancel", "Workers stop within 2 seconds."))
