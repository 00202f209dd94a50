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
    """The workspace and the services object every command goes through.

    `services` is given to the constructor, or a function that builds it on first use (so
    `newsletter --help` loads no settings and imports no database code).
    """

    def __init__(self, workspace: Path, overrides: dict[str, dict[str, Any]],
                 services: Services | Callable[[], Services] | None = None) -> None:
        self.workspace = workspace
        self.overrides = overrides
        self._services = services

    @cached_property
    def unchecked_services(self) -> Services:
        """The services object, without checking that the schema is up to date."""
        from newsletter.services import Services, build_services

        given = self._services
        if isinstance(given, Services):
            return given
        return given() if given is not None else build_services(self._load_settings())

    def _load_settings(self) -> Settings:
        from newsletter.config import load_settings

        return load_settings(self.workspace, overrides=self.overrides)

    @property
    def settings(self) -> Settings:
        return self.unchecked_services.settings

    @cached_property
    def services(self) -> Services:
        """The services object, once the database schema is known to be up to date."""
        self.unchecked_services.require_schema()
        return self.unchecked_services

    @property
    def optin(self) -> OptIn:
        """The opt-in service (confirmation mails and the form's queued requests)."""
        return self.services.audience.optin

    def close(self) -> None:
        if "unchecked_services" in self.__dict__:
            self.unchecked_services.close()


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
