"""`newsletter db`: schema migrations."""

from __future__ import annotations

import click

from newsletter.cli.context import AppContext, pass_app
from newsletter.services import build_services


@click.group("db")
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@pass_app
def upgrade(app: AppContext) -> None:
    """Create or migrate the database schema to the newest version."""
    services = build_services(app.settings)
    try:
        services.upgrade()
    finally:
        services.close()
    click.echo("database is up to date")
