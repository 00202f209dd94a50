"""What every command receives: settings and services, created on first use.

Every command module imports this one, so it imports nothing heavy at the top (rich, the
settings and the services come in when first used).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.table import Table

    from newsletter.audience.optin import OptIn
    from newsletter.config import Settings
    from newsletter.services import Services


class AppContext:
    def __init__(self, workspace: Path, overrides: dict[str, dict[str, Any]]) -> None:
        self.workspace = workspace
        self.overrides = overrides

    @cached_property
    def settings(self) -> Settings:
        from newsletter.config import load_settings

        return load_settings(self.workspace, overrides=self.overrides)

    @cached_property
    def services(self) -> Services:
        from newsletter.services import build_services

        services = build_services(self.settings)
        services.require_schema()
        return services

    @cached_property
    def optin(self) -> OptIn:
        """The opt-in service (confirmation mails and the form's queued requests)."""
        from newsletter.audience.optin import OptIn
        from newsletter.web.mails import SystemMails

        return OptIn.from_settings(self.settings, self.services.engine, SystemMails(self.settings))

    def close(self) -> None:
        if "services" in self.__dict__:
            self.services.close()


pass_app = click.make_pass_decorator(AppContext)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def print_json(data: Any) -> None:
    """The one JSON renderer for --json output."""
    click.echo(json.dumps(data, default=_plain, ensure_ascii=False, indent=2))


def print_table(table: Table) -> None:
    """A table on a terminal; plain tab-separated rows, never cut, when piped or redirected."""
    if sys.stdout.isatty():
        from rich.console import Console

        Console().print(table)
        return

    def plain(cell: Any) -> str:
        return " ".join(str(cell).split())  # a tab or line break would split the row

    columns = table.columns
    if table.title:
        click.echo(plain(table.title))
    click.echo("\t".join(plain(c.header) for c in columns))
    for row in zip(*(list(c.cells) for c in columns), strict=True):
        click.echo("\t".join(plain(cell) for cell in row))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def run_in_foreground(server: Any, banner: str | Callable[[], str]) -> None:
    """Start a threaded server, say so, and keep it up until Ctrl-C or SIGTERM; then stop it.

    `banner` may be a function, for servers that learn their port only once started.
    """
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server.start()
        click.echo(banner() if callable(banner) else banner, err=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
