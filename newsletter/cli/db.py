"""`newsletter db`: schema migrations."""

from __future__ import annotations

import click

from newsletter.cli.context import AppContext, pass_app


@click.group("db")
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@pass_app
def upgrade(app: AppContext) -> None:
    """Create or migrate the database schema to the newest version."""
    app.unchecked_services.upgrade()
    click.echo("database is up to date")
