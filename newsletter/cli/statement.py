"""`newsletter statement check|review|export`: sign-on statements (statements/<slug>/)."""

from __future__ import annotations

import click

from newsletter.cli.context import AppContext, pass_app
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
