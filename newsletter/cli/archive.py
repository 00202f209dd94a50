"""`newsletter archive build|serve`: the public static archive of sent issues."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.archive.writer import OutputError
from newsletter.cli.context import AppContext, json_option, pass_app, print_json

if TYPE_CHECKING:
    from newsletter.archive.builder import BuildReport

# The builder (SQLAlchemy, Jinja2, Babel) is imported inside the commands: `archive serve`
# and `archive --help` do without it.


def _out(app: AppContext, out: Path | None) -> Path:
    return out if out is not None else app.settings.path(app.settings.archive.out)


def _print(report: BuildReport) -> None:
    click.echo(
        f"Archive in {report.out}: {report.editions} editions in "
        f"{len(report.languages)} languages ({', '.join(report.languages) or 'none'}), "
        f"{report.pages} pages, {report.assets} files."
    )
    click.echo(
        f"{report.written} written, {report.unchanged} unchanged, {report.removed} removed "
        f"in {report.seconds:.2f} s."
    )
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)


@click.group("archive")
def archive() -> None:
    """Build and preview the public web archive of sent issues."""


@archive.command("build")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: [archive] out, i.e. site/).")
@click.option("--clean", is_flag=True, help="Delete the previous build first and start over.")
@json_option
@pass_app
def build(app: AppContext, out: Path | None, clean: bool, as_json: bool) -> None:
    """Write the static site: index and feed per language, a page per sent issue, sitemap."""
    report = app.services.archive.build(out=_out(app, out), clean=clean)
    if as_json:
        print_json(report)
    else:
        _print(report)


@archive.command("serve")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to serve (default: [archive] out).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8800, show_default=True)
@pass_app
def serve(app: AppContext, out: Path | None, host: str, port: int) -> None:
    """Preview the built archive on localhost, at / (Ctrl-C stops).

    The public side is `newsletter serve`, which serves the archive under /archive/, where the
    emails' pictures and "view in browser" links point.
    """
    from newsletter.archive.preview import make_server

    root = _out(app, out)
    if not root.is_dir():
        raise OutputError(f"{root}: no archive here yet; run `newsletter archive build` first")
    server = make_server(root, host, port)
    click.echo(f"Serving {root} at http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
