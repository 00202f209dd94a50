"""`newsletter capture`: a local SMTP inbox for the demo and for development.

    newsletter capture                 run the server (same as `capture serve`)
    newsletter capture summary --json  count what arrived, per language and recipient
    newsletter capture clear           empty the Maildir before a new run
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from newsletter.cli.context import (
    AppContext,
    json_option,
    pass_app,
    print_json,
    run_in_foreground,
)
from newsletter.delivery.capture import (
    CapturedMessage,
    CaptureServer,
    clear_maildir,
    summarize_maildir,
)


def _maildir(app: AppContext, maildir: Path | None) -> Path:
    return maildir or app.settings.path(app.settings.capture.maildir)


def _server_options(func: Any) -> Any:
    func = click.option("--quiet", "-q", is_flag=True, help="No line per message.")(func)
    func = click.option("--maildir", type=click.Path(file_okay=False, path_type=Path),
                        help="Maildir to store into. Default: [capture] maildir.")(func)
    func = click.option("--port", type=int, help="Port. Default: [capture] port (8025).")(func)
    func = click.option("--host", help="Address to listen on. Default: [capture] host.")(func)
    return func


@click.group(invoke_without_command=True)
@_server_options
@click.pass_context
def capture(ctx: click.Context, host: str | None, port: int | None, maildir: Path | None,
            quiet: bool) -> None:
    """Local SMTP server that keeps every message in a Maildir (nothing is relayed).

    Without a subcommand it runs the server until Ctrl-C, printing one line per message:
    time, Content-Language, size, envelope sender -> recipients, subject. Point
    [smtp] host/port at it (the defaults already match).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve, host=host, port=port, maildir=maildir, quiet=quiet)


@capture.command()
@_server_options
@pass_app
def serve(app: AppContext, host: str | None, port: int | None, maildir: Path | None,
          quiet: bool) -> None:
    """Run the capture server until Ctrl-C (or SIGTERM)."""
    section = app.settings.capture
    folder = _maildir(app, maildir)

    def show(message: CapturedMessage) -> None:
        click.echo(message.line())

    server = CaptureServer(folder, host=host or section.host,
                           port=section.port if port is None else port,
                           on_message=None if quiet else show)
    run_in_foreground(server, lambda: f"Capturing mail on {server.host}:{server.port} into "
                                      f"{folder} (Ctrl-C to stop)")
    click.echo(f"Stopped: {server.count} message(s) captured.", err=True)


@capture.command()
@click.option("--maildir", type=click.Path(file_okay=False, path_type=Path),
              help="Maildir to read. Default: [capture] maildir.")
@json_option
@pass_app
def summary(app: AppContext, maildir: Path | None, as_json: bool) -> None:
    """Count what arrived per language, issue and recipient, and list duplicates."""
    result = summarize_maildir(_maildir(app, maildir))
    if as_json:
        print_json(result)
        return
    click.echo(f"{result['messages']} message(s) to {result['recipients']} recipient(s) "
               f"in {result['maildir']}")
    click.echo("By language:")
    for language, count in result["by_language"].items():
        click.echo(f"  {language:<8} {count:>7}")
    if len(result["by_issue"]) > 1 or "(none)" not in result["by_issue"]:
        click.echo("By issue:")
        for issue, count in result["by_issue"].items():
            click.echo(f"  {issue:<40} {count:>7}")
    click.echo("By subject:")
    for subject, count in result["by_subject"].items():
        click.echo(f"  {count:>7}  {subject}")
    if result["duplicates"]:
        shown = ", ".join(result["duplicates"][:10])
        more = len(result["duplicates"]) - 10
        click.echo(f"Recipients with more than one message: {shown}"
                   + (f" and {more} more" if more > 0 else ""))
    else:
        click.echo("No recipient received more than one message.")


@capture.command()
@click.option("--maildir", type=click.Path(file_okay=False, path_type=Path),
              help="Maildir to empty. Default: [capture] maildir.")
@pass_app
def clear(app: AppContext, maildir: Path | None) -> None:
    """Delete every captured message."""
    removed = clear_maildir(_maildir(app, maildir))
    click.echo(f"Removed {removed} message(s).")
