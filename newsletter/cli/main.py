"""The `newsletter` command: a root group that loads settings and turns errors into one line."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from newsletter import __version__
from newsletter.cli.context import AppContext
from newsletter.errors import NewsletterError


class NewsletterGroup(click.Group):
    """Catches the project's errors in exactly one place: one clear line, exit status 1."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise click.ClickException(f"database error: {detail}") from None
        except OSError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=NewsletterGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-w",
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="NEWSLETTER_WORKSPACE",
    default=".",
    show_default=True,
    help="Workspace folder holding newsletter.toml.",
)
@click.option("--database-url", help="Overrides [database] url and NEWSLETTER_DATABASE_URL.")
@click.version_option(__version__, prog_name="newsletter")
@click.pass_context
def cli(ctx: click.Context, workspace: Path, database_url: str | None) -> None:
    """Multilingual newsletters: lists, double opt-in, Markdown issues, sending, archive."""
    overrides = {"database": {"url": database_url}} if database_url else {}
    ctx.obj = AppContext(workspace=workspace, overrides=overrides)
    ctx.call_on_close(ctx.obj.close)


def register() -> None:
    """Attach every command module; each one adds its own group or command."""
    from newsletter.cli import db, init, lists, subscribers

    for module in (init, db, lists, subscribers):
        module.attach(cli)
    optional = ("issue", "send", "capture", "serve", "archive", "outbox", "bounces", "maintenance",
                "doctor")
    for name in optional:
        _attach_optional(name)


def _attach_optional(name: str) -> None:
    import importlib

    try:
        module = importlib.import_module(f"newsletter.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"newsletter.cli.{name}":
            raise
        return
    module.attach(cli)


def main() -> None:
    register()
    cli(prog_name="newsletter")


if __name__ == "__main__":  # pragma: no cover
    main()
