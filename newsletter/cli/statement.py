"""`newsletter statement check|review|export`: sign-on statements (statements/<slug>/)."""

from __future__ import annotations

from typing import TextIO

import click
from rich.table import Table

from newsletter.cli.context import AppContext, json_option, pass_app, print_json, print_table
from newsletter.statements.source import check_statement


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
@json_option
@pass_app
def review(app: AppContext, slug: str, approve_all: bool, approve: tuple[int, ...],
           reject: tuple[int, ...], as_json: bool) -> None:
    """List the verified signatures of SLUG waiting for a decision, or decide."""
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
    table = Table("id", "organisation", "country", "type", "contact", "email", "listed",
                  "verified", title=f"{slug}: verified signatures")
    for r in rows:
        when = r["verified_at"].strftime("%Y-%m-%d %H:%M") if r["verified_at"] else ""
        table.add_row(str(r["id"]), r["organisation"], r["country"], r["organisation_type"],
                      r["contact_name"], r["contact_email"], "yes" if r["listed"] else "no",
                      when)
    print_table(table)


@statement.command("export")
@click.argument("slug")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="Write to this file instead of the standard output.")
@pass_app
def export(app: AppContext, slug: str, output: TextIO) -> None:
    """Write every signature of SLUG as CSV, contacts included: for the editors only."""
    output.write(app.services.statements.export_csv(slug))
