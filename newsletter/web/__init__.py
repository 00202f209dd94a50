"""The subscriber web app.

`create_app(settings)` builds an app; `newsletter.web:app` (for `uvicorn newsletter.web:app`
and other ASGI servers) is built on first access from NEWSLETTER_WORKSPACE and NEWSLETTER_*
variables, so importing this package never reads settings or opens a database.
"""

from __future__ import annotations

from typing import Any

from newsletter.web.application import create_app

__all__ = ["create_app", "app"]

_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module 'newsletter.web' has no attribute {name!r}")
    if "app" not in _built:
        from newsletter.config import load_settings

        _built["app"] = create_app(load_settings())
    return _built["app"]
