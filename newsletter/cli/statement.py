"""`newsletter statement check|review|export`: sign-on statements (statements/<slug>/)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

import click
from rich.table import Table

from newsletter.cli.context import AppContext, json_option, pass_app, print_json, print_table
from newsletter.statements.source import check_statement

if TYPE_CHECKING:
    from newsletter.facades import Statements

ANSWERS = ("a", "r", "s", "q")


@click.group("statement")
def statement() -> None:
    """Sign-on statements: check the text, review signatures, export them."""


@statement.command("check")
@click.argument("slug")
@pass_app
def check(app: AppContext, slug: str) -> None:
    """Check statements/SLUG/: every language present, front matter sound."""
    problems = check_statement(app.settings.workspace, slug)
    for line in problems:
        click.echo(line)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in statement {slug!r}")
    click.echo(f"statement {slug!r}: ok")


@statement.command("review")
@click.argument("slug")
@click.option("--approve-all", is_flag=True, help="Approve every verified signature.")
@click.option("--approve", "approve", type=int, multiple=True, metavar="ID",
              help="Approve this verified signature (repeatable).")
@click.option("--reject", "reject", type=int, multiple=True, metavar="ID",
              help="Reject this signature (repeatable).")
@click.option("--interactive/--no-interactive", default=None,
              help="Walk the waiting signatures one by one (approve, reject, skip, quit). "
                   "The default on a terminal; --interactive also reads answers from a pipe.")
@json_option
@pass_app
def review(app: AppContext, slug: str, approve_all: bool, approve: tuple[int, ...],
           reject: tuple[int, ...], interactive: bool | None, as_json: bool) -> None:
    """Review the verified signatures of SLUG: one by one on a terminal, or list them and
    decide with --approve-all, --approve ID, --reject ID.

    When an organisation's name matches an approved one but for case, accents or spacing,
    the walk offers to merge it under the approved spelling (the public page lists one)."""
    statements = app.services.statements
    if approve_all or approve or reject:
        done = {"approved": statements.decide(slug, "approved", None if approve_all else approve)
                if approve_all or approve else [],
                "rejected": statements.decide(slug, "rejected", reject) if reject else []}
        if as_json:
            print_json(done)
            return
        click.echo(f"approved {len(done['approved'])}, rejected {len(done['rejected'])}")
        return
    rows = statements.signatures(slug, ("verified",))
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo(f"no signature of {slug!r} waits for review")
        return
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive:
        walk(statements, slug, rows)
        return
    _table(slug, rows)
    click.echo("Decide with --approve-all, --approve ID or --reject ID, or run on a terminal "
               "to review them one by one.", err=True)  # the table alone on stdout


def _when(row: dict[str, Any]) -> str:
    return row["verified_at"].strftime("%Y-%m-%d %H:%M") if row["verified_at"] else ""


def _table(slug: str, rows: list[dict[str, Any]]) -> None:
    table = Table("id", "organisation", "country", "type", "contact", "email", "listed",
                  "verified", title=f"{slug}: verified signatures")
    for r in rows:
        table.add_row(str(r["id"]), r["organisation"], r["country"], r["organisation_type"],
                      r["contact_name"], r["contact_email"], "yes" if r["listed"] else "no",
                      _when(r))
    print_table(table)


def walk(statements: Statements, slug: str, rows: list[dict[str, Any]]) -> None:
    """Ask about each signature in turn; each answer is written at once."""
    counts = dict.fromkeys(("approved", "rejected", "merged", "skipped"), 0)
    for number, row in enumerate(rows, 1):
        click.echo(f"\n[{number}/{len(rows)}] signature {row['id']}: {row['organisation']} "
                   f"({row['country']}, {row['organisation_type']}), listed: "
                   f"{'yes' if row['listed'] else 'no'}")
        click.echo(f"  contact: {row['contact_name']} <{row['contact_email']}>, "
                   f"verified {_when(row)}")
        answer = click.prompt("  [a]pprove, [r]eject, [s]kip, [q]uit",
                              type=click.Choice(ANSWERS), show_choices=False)
        if answer == "q":
            break
        if answer == "s":
            counts["skipped"] += 1
            continue
        if answer == "a":
            counts["merged"] += _merge(statements, slug, row)
        decision = "approved" if answer == "a" else "rejected"
        statements.decide(slug, decision, [row["id"]])
        counts[decision] += 1
    click.echo(", ".join(f"{name} {count}" for name, count in counts.items()))


def _merge(statements: Statements, slug: str, row: dict[str, Any]) -> int:
    """Offer to merge the signature under an approved organisation named alike; 1 if merged."""
    spelling = statements.approved_spelling(slug, row["id"])
    if spelling is None:
        return 0
    if click.confirm(f"  {row['organisation']!r} looks like {spelling!r}, already approved: "
                     f"the same organisation? (merge it under {spelling!r})", default=True):
        statements.merge(slug, row["id"], spelling)
        return 1
    statements.keep_apart(slug, row["id"])
    return 0


@statement.command("export")
@click.argument("slug")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="Write to this file instead of the standard output.")
@pass_app
def export(app: AppContext, slug: str, output: TextIO) -> None:
    """Write every signature of SLUG as CSV, contacts included: for the editors only."""
    output.write(app.services.statements.export_csv(slug))
