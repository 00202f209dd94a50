"""Where the package's log records go: `--log-format text` (Python's default) or `json`.

With json, every record of the `newsletter` loggers becomes one JSON object on one line of
stderr: time (UTC, ISO 8601), level, logger, message, the fields passed with `extra=`, and
the traceback as `exception` when there is one. Log shippers (journald, Loki, Elasticsearch)
read that without parsing rules.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

FORMATS = ("text", "json")
ENVIRONMENT = "NEWSLETTER_LOG_FORMAT"  # set by use_log_format, for processes started later
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def use_log_format(fmt: str, stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    """Route the `newsletter` loggers: json installs one JSON-lines handler; text keeps Python's
    default (warnings and errors on stderr, as plain lines)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")
    os.environ[ENVIRONMENT] = fmt
    logger = logging.getLogger("newsletter")
    for handler in [h for h in logger.handlers if getattr(h, "newsletter_json", False)]:
        logger.removeHandler(handler)
    if fmt == "text":
        logger.propagate = True
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.newsletter_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def use_log_format_from_environment() -> None:
    """In a process started by another (a spawned send worker): the parent's choice."""
    fmt = os.environ.get(ENVIRONMENT, "text")
    if fmt in FORMATS and fmt != "text":
        use_log_format(fmt)


def logging_config(fmt: str, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` dict with the package's and uvicorn's loggers in `fmt`:
    pass it as uvicorn's `log_config`, and every `serve --workers` process applies it."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")
    formatter = ({"()": f"{__name__}.JsonFormatter"} if fmt == "json" else
                 {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"})
    handler = {"class": "logging.StreamHandler", "formatter": "main",
               "stream": "ext://sys.stderr"}
    logger = {"handlers": ["main"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "loggers": {name: dict(logger) for name in
                    ("newsletter", "uvicorn", "uvicorn.error", "uvicorn.access")},
    }
