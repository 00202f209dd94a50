"""`newsletter init DIR`: a new workspace with example content and a migrated database."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import click

from newsletter.config import load_settings
from newsletter.errors import NewsletterError
from newsletter.services import build_services

SKELETON = Path(__file__).resolve().parent.parent / "skeleton"

CONFIG_TEMPLATE = """\
# newsletter.toml: settings of this workspace.
# Precedence: command-line flags > environment (NEWSLETTER_*) > this file > defaults.
# Secrets (secret_key, SMTP password) are better set in the environment:
#   NEWSLETTER_SECRET_KEY, NEWSLETTER_SMTP_PASSWORD

[newsletter]
name = "Coalition News"
organisation = "Civil Society Coalition on Migration"
postal_address = "Rue de l'Exemple 1, 1202 Geneva, Switzerland"
base_url = "http://127.0.0.1:8000"          # public URL of `newsletter serve` (NEWSLETTER_BASE_URL)
from_address = "news@example.org"
from_name = "Coalition News"
sender_id = "coalition"                     # constant Feedback-ID sender id
list_id_domain = "lists.example.org"
default_language = "en"
secret_key = "{secret}"

[database]
url = "sqlite:///newsletter.db"             # or postgresql://user@host/db (NEWSLETTER_DATABASE_URL)

[smtp]
host = "127.0.0.1"                          # NEWSLETTER_SMTP_HOST
port = 8025                                 # `newsletter capture` listens here by default
tls = "none"                                # none | starttls | tls
connections = 4
messages_per_connection = 1000

[bounces]
domain = "bounces.example.org"

[capture]
maildir = "maildir"

[send]
publish_check = true                        # `send` publishes the web version, checks it answers
"""

GITIGNORE = "newsletter.db\nnewsletter.db-*\nmaildir/\nsite/\npreview/\n.cache/\n"


def create_workspace(target: Path, force: bool = False) -> list[str]:
    """Copy the example content into target and write a config with a fresh secret key."""
    if (target / "newsletter.toml").exists() and not force:
        raise NewsletterError(f"{target} already has a newsletter.toml (use --force to reuse it)")
    target.mkdir(parents=True, exist_ok=True)
    made = []
    for name in ("templates", "issues", "statements", "subscribers"):
        source = SKELETON / name
        if source.exists() and not (target / name).exists():
            shutil.copytree(source, target / name, symlinks=False)
            made.append(f"{name}/")
        (target / name).mkdir(exist_ok=True)
    if not (target / "newsletter.toml").exists():
        text = CONFIG_TEMPLATE.replace("{secret}", secrets.token_urlsafe(32))
        (target / "newsletter.toml").write_text(text, encoding="utf-8")
        made.append("newsletter.toml")
    if not (target / ".gitignore").exists():
        (target / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    return made


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Reuse a folder that already has newsletter.toml.")
@click.option("--database-url", help="Database for the new workspace (default: SQLite inside it).")
def init(directory: Path, force: bool, database_url: str | None) -> None:
    """Create a workspace in DIRECTORY with example lists, issues and templates."""
    made = create_workspace(directory, force=force)
    overrides = {"database": {"url": database_url}} if database_url else {}
    settings = load_settings(directory, overrides=overrides)
    services = build_services(settings)
    try:
        services.upgrade()
        lists_file = directory / "subscribers" / "lists.toml"
        created = services.lists.sync(lists_file).created if lists_file.exists() else []
    finally:
        services.close()
    for item in made:
        click.echo(f"created {directory / item}")
    click.echo("database migrated")
    for slug in created:
        click.echo(f"list {slug!r} created")
    click.echo(f"next: cd {directory} && newsletter lists list")
