"""What every command receives: settings and services, created on first use."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import click

from newsletter.config import Settings, load_settings
from newsletter.services import Services, build_services


class AppContext:
    def __init__(self, workspace: Path, overrides: dict[str, dict[str, Any]]) -> None:
        self.workspace = workspace
        self.overrides = overrides

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.workspace, overrides=self.overrides)

    @cached_property
    def services(self) -> Services:
        services = build_services(self.settings)
        services.require_schema()
        return services

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


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
