"""The subscriber web app.

`create_app(services)` builds an app; `newsletter.web:app` (for `uvicorn newsletter.web:app`
and other ASGI servers) is built on first access from NEWSLETTER_WORKSPACE and NEWSLETTER_*
variables, so importing this package never reads settings or opens a database.
`AppFactory(settings)` is what `newsletter serve --workers` hands each worker process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from newsletter.config import Settings
from newsletter.web.application import create_app

__all__ = ["AppFactory", "create_app", "app"]


@dataclass(frozen=True)
class AppFactory:
    """Settings sent (pickled) to a worker process, which builds its own services and app."""

    settings: Settings
    outbox_worker: bool | None = None

    def __call__(self) -> Any:
        from newsletter.services import build_services

        return create_app(build_services(self.settings), outbox_worker=self.outbox_worker)

_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module 'newsletter.web' has no attribute {name!r}")
    if "app" not in _built:
        from newsletter.config import load_settings
        from newsletter.services import build_services

        _built["app"] = create_app(build_services(load_settings()))
    return _built["app"]
