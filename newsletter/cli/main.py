"""The `newsletter` command: a root group that loads settings and turns errors into one line.

The root group knows its commands from a table and imports a command's module only when that
command runs (or shows its own help), so `newsletter --version` and `--help` start at once.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import NamedTuple

import click

from newsletter import __version__
from newsletter.errors import NewsletterError


class Entry(NamedTuple):
    target: str  # "module:attribute" of the click command
    help: str  # the first paragraph of the command's help, shown by `newsletter --help`


COMMANDS: dict[str, Entry] = {
    "archive": Entry("newsletter.cli.archive:archive",
                     "Build and preview the public web archive of sent issues."),
    "bounces": Entry("newsletter.cli.bounces:bounces",
                     "Bounces and complaints: receive them, process a mailbox, list them."),
    "capture": Entry("newsletter.cli.capture:capture", "Local SMTP server that keeps every "
                     "message in a Maildir (nothing is relayed)."),
    "db": Entry("newsletter.cli.db:db", "Database schema management."),
    "doctor": Entry("newsletter.cli.doctor:doctor", "Check SPF, DKIM, DMARC, MX, PTR, the SMTP "
                    "relay and the public URLs."),
    "init": Entry("newsletter.cli.init:init", "Create a workspace in DIRECTORY with example "
                  "lists, issues and templates."),
    "issue": Entry("newsletter.cli.issue:issue",
                   "Write, check and preview issues (issues/<slug>/<lang>.md)."),
    "lists": Entry("newsletter.cli.lists:lists", "Mailing lists: add, list, show, update, "
                   "rename, delete, sync from subscribers/lists.toml."),
    "maintenance": Entry("newsletter.cli.maintenance:maintenance", "Purge subscriptions never "
                         "confirmed after [audience] pending_days (default 30)."),
    "outbox": Entry("newsletter.cli.outbox:outbox",
                    "System mails waiting for the SMTP relay: list, send."),
    "send": Entry("newsletter.cli.send:send", "Send issue SLUG to every confirmed subscriber of "
                  "its list, each in their language."),
    "serve": Entry("newsletter.cli.serve:serve", "Serve subscribe, confirm, preferences and "
                   "one-click unsubscribe pages."),
    "statement": Entry("newsletter.cli.statement:statement",
                       "Sign-on statements: check the text, review signatures, export them."),
    "worker": Entry("newsletter.cli.worker:worker", "Send every issue that is sending, start "
                    "scheduled ones, deliver system mails."),
    "workers": Entry("newsletter.cli.worker:workers", "The running `newsletter worker` "
                     "processes: host, pid, since, issue, rate."),
    "subscribers": Entry("newsletter.cli.subscribers:subscribers",
                         "Subscribers: add, import CSV, invite, list, export, remove."),
}


def load_command(name: str) -> click.Command:
    """Import the module of command `name` from the table and return its click command."""
    import importlib

    module, _, attribute = COMMANDS[name].target.partition(":")
    # A command's imports make objects by the hundred thousand and almost no cycles: the
    # collector's passes over them, then and later, cost ~5 % of a small send's instructions.
    # Off while they run; what they made is then frozen (kept out of every later pass), as
    # the workers do.
    collecting = gc.isenabled()
    gc.disable()
    try:
        command = getattr(importlib.import_module(module), attribute)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    if not isinstance(command, click.Command):
        raise TypeError(f"{COMMANDS[name].target} is not a click command")
    return command


def _database_error(exc: Exception) -> str | None:
    """The one-line message for a SQLAlchemy error, None for any other exception.

    SQLAlchemy is looked up, not imported: if no command loaded it, nothing raised its errors.
    """
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.SQLAlchemyError):
        return None
    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return f"database error: {detail}"


def _during_ctrl_c(exc: BaseException) -> bool:
    """Whether `exc` came while a Ctrl-C was unwinding: a library's clean-up that failed
    because the interrupt cut its work short (psycopg, stopped mid-query, refused to reset
    the connection), which would otherwise hide the Ctrl-C behind its own error."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        pending += [current.__cause__, current.__context__]
    return False


class NewsletterGroup(click.Group):
    """Loads commands from COMMANDS on first use; catches the project's errors in exactly one
    place: one clear line, exit status 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(load_command(cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table's help texts, without importing any command."""
        names = self.list_commands(ctx)
        shown = {name: self.commands.get(name) or click.Command(name, help=COMMANDS[name].help)
                 for name in names}
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, cmd.get_short_help_str(limit)) for name, cmd in shown.items()
                if not cmd.hidden]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if _during_ctrl_c(exc):  # click then says "Aborted!", as for the Ctrl-C alone
                raise KeyboardInterrupt from exc
            if isinstance(exc, (NewsletterError, OSError)):
                raise click.ClickException(str(exc)) from None
            message = _database_error(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None


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
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              envvar="NEWSLETTER_LOG_FORMAT", show_default=True,
              help="json: every log line is one JSON object (time, level, logger, message, "
                   "extra fields), for journald or a log shipper.")
@click.version_option(__version__, prog_name="newsletter")
@click.pass_context
def cli(ctx: click.Context, workspace: Path, database_url: str | None, log_format: str) -> None:
    """Multilingual newsletters: lists, double opt-in, Markdown issues, sending, archive."""
    from newsletter.cli.context import AppContext

    if log_format != "text":
        from newsletter.logs import use_log_format

        use_log_format(log_format)

    overrides = {"database": {"url": database_url}} if database_url else {}
    ctx.obj = AppContext(workspace=workspace, overrides=overrides)
    ctx.call_on_close(ctx.obj.close)


def main() -> None:
    try:
        cli(prog_name="newsletter")
    finally:
        # The process ends: the interpreter's four collections at exit would go over every
        # object left (~4 % of a small send's instructions) to free memory the exit gives
        # back anyway. Connections are closed by then (services.close, the runs' dispose).
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
