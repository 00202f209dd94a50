"""Settings: defaults, then newsletter.toml, then environment (NEWSLETTER_*), then flags.

Every key is declared once in SCHEMA with its type and default, so a wrong key or value is
reported with its exact place ("newsletter.toml: [smtp] port: ...") instead of failing later.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from newsletter.configschema import (
    SCHEMA,
    ArchiveSettings,
    AudienceSettings,
    BouncesSettings,
    CaptureSettings,
    DatabaseSettings,
    DkimSettings,
    DoctorSettings,
    NewsletterSettings,
    Secret,
    SendSettings,
    SmtpSettings,
    Text,
    WebSettings,
)
from newsletter.errors import NewsletterError
from newsletter.localized import Localized, check_languages, check_text, pick

CONFIG_FILE = "newsletter.toml"


class ConfigError(NewsletterError):
    """A setting is missing or has a value we cannot use."""


__all__ = ["SCHEMA", "ConfigError", "Secret", "Settings", "Text", "load_settings"]


TLS_MODES = ("none", "starttls", "tls")
PORTS = (("smtp", "port"), ("bounces", "port"), ("web", "port"), ("capture", "port"))
SHOWN = 60  # characters of a wrong value quoted back in an error


def is_secret(section: str, key: str) -> bool:
    """Settings whose values never appear in an error message or a repr."""
    return SCHEMA[section][key][0] is Secret or (section, key) == ("newsletter", "old_secret_keys")


def _shown(value: Any, secret: bool = False) -> str:
    """A wrong value as an error quotes it: secrets by type only, long values cut."""
    if secret:
        return f"a value of type {type(value).__name__} (not shown)"
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


SectionT = TypeVar("SectionT")


class _Section(Generic[SectionT]):
    """`settings.<name>`: the section's values as its frozen dataclass, built on first read."""

    def __init__(self, kind: type[SectionT]) -> None:
        self.kind = kind

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, settings: Settings, owner: type | None = None) -> SectionT:
        found = settings.typed.get(self.name)
        if found is None:
            found = settings.typed[self.name] = self.kind(**settings.values[self.name])
        return found


@dataclass(frozen=True)
class Settings:
    """All settings, read once; sections are plain dicts keyed as in SCHEMA."""

    workspace: Path
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (section, key) -> {language: text} for the Text settings given as a table; their entry in
    # `values` holds the default language's text, so code that needs no language reads that.
    tables: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    typed: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.values[section]

    # Typed, read-only views of the sections (`settings.smtp.port`): a misspelt key fails mypy
    # instead of a send. Not annotated, so the dataclass does not take them for fields.
    newsletter = _Section(NewsletterSettings)
    database = _Section(DatabaseSettings)
    smtp = _Section(SmtpSettings)
    send = _Section(SendSettings)
    bounces = _Section(BouncesSettings)
    dkim = _Section(DkimSettings)
    web = _Section(WebSettings)
    archive = _Section(ArchiveSettings)
    audience = _Section(AudienceSettings)
    doctor = _Section(DoctorSettings)
    capture = _Section(CaptureSettings)

    def __repr__(self) -> str:
        # Secrets are Secret (masked repr); the database URL may carry a password of its own.
        from newsletter.db.engine import redact_url

        values = {**self.values, "database": {**self.values["database"],
                                              "url": redact_url(self.values["database"]["url"])}}
        return f"Settings(workspace={str(self.workspace)!r}, values={values!r})"

    @property
    def database_url(self) -> str:
        return resolve_database_url(self.values["database"]["url"], self.workspace)

    @property
    def secret_key(self) -> Secret:
        return self.values["newsletter"]["secret_key"]

    def text(self, section: str, key: str, language: str) -> str:
        """A reader-facing setting in a language, falling back to the default language."""
        table: Localized | None = self.tables.get((section, key))
        if table is None:
            return str(self.values[section][key])
        return pick(table, language, self.values["newsletter"]["default_language"])

    @property
    def languages(self) -> dict[str, dict[str, str]]:
        """[languages.<code>] options: locale and date_format per language."""
        return self.values.get("languages", {})

    def path(self, relative: str) -> Path:
        """A workspace-relative path made absolute."""
        p = Path(relative)
        return p if p.is_absolute() else self.workspace / p


def resolve_database_url(url: str, workspace: Path) -> str:
    """Make a relative SQLite path relative to the workspace, not the current folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        if rest and rest != ":memory:":
            return prefix + str((workspace / rest).resolve())
    return url


def _coerce(value: Any, kind: type, where: str, secret: bool = False) -> Any:
    if kind is Text and isinstance(value, dict):
        try:
            return check_text(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if kind in (Secret, Text):
        kind = str
    shown = _shown(value, secret)
    if kind is bool:
        if isinstance(value, bool):
            return value
        words = ("1", "true", "yes", "on", "0", "false", "no", "off")
        if isinstance(value, str) and value.lower() in words:
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {shown}")
    if kind in (int, float):
        name = "an integer" if kind is int else "a number"
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected {name}, got {shown}")
        try:
            number = kind(value)
        except (TypeError, ValueError, OverflowError):  # Overflow: int(inf)
            raise ConfigError(f"{where}: expected {name}, got {shown}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {shown}")
        return number
    if kind is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {shown}")
        if secret and not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{where}: expected a list of keys (text), got other values")
        return [Secret(v) for v in value] if secret else value
    if kind is dict:
        if isinstance(value, dict):
            return value
        raise ConfigError(f"{where}: expected a table, got {shown}")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected text, got {shown}")
    if "\0" in value:
        raise ConfigError(f"{where}: contains a NUL byte")
    return value


def read_toml(path: Path) -> dict[str, Any]:
    """Read newsletter.toml, reporting a syntax error with its line."""
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8") from None


def _from_file(data: dict[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for section, keys in data.items():
        if section == "languages":
            try:
                out["languages"] = check_languages(keys)
            except ValueError as exc:
                raise ConfigError(f"{path.name}: {exc}") from None
            continue
        if section not in SCHEMA:
            known = ", ".join([*SCHEMA, "languages"])
            raise ConfigError(f"{path.name}: unknown section [{section}] (known: {known})")
        if not isinstance(keys, dict):
            raise ConfigError(f"{path.name}: [{section}] must be a table")
        for key, value in keys.items():
            if key not in SCHEMA[section]:
                known = ", ".join(SCHEMA[section])
                raise ConfigError(f"{path.name}: [{section}] unknown key {key!r} (known: {known})")
            kind = SCHEMA[section][key][0]
            where = f"{path.name}: [{section}] {key}"
            out.setdefault(section, {})[key] = _coerce(value, kind, where,
                                                       is_secret(section, key))
    return out


def env_name(section: str, key: str) -> str:
    """NEWSLETTER_BASE_URL for [newsletter] base_url, NEWSLETTER_SMTP_HOST for [smtp] host."""
    if section == "newsletter":
        return f"NEWSLETTER_{key.upper()}"
    return f"NEWSLETTER_{section.upper()}_{key.upper()}"


def _from_env(environ: dict[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        for key, (kind, _default) in keys.items():
            name = env_name(section, key)
            if name in environ:
                out.setdefault(section, {})[key] = _coerce(environ[name], kind, name,
                                                           is_secret(section, key))
    return out


def _validate(values: dict[str, dict[str, Any]]) -> None:
    tls = values["smtp"]["tls"]
    if tls not in TLS_MODES:
        raise ConfigError(f"[smtp] tls: expected one of {', '.join(TLS_MODES)}, got {_shown(tls)}")
    for section, key in PORTS:
        if not 0 <= values[section][key] <= 65535:
            raise ConfigError(f"[{section}] {key}: expected a port from 0 to 65535, "
                              f"got {values[section][key]}")
    for key in ("connections", "messages_per_connection", "batch_size"):
        if values["smtp"][key] < 1:
            raise ConfigError(f"[smtp] {key}: must be at least 1")
    if not 0 <= values["smtp"]["workers"] <= 64:
        raise ConfigError("[smtp] workers: expected 0 (one per two CPU cores) to 64")
    base = values["newsletter"]["base_url"]
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"[newsletter] base_url: expected an http(s) URL, got {_shown(base)}")


def load_settings(
    workspace: Path | str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Merge defaults < newsletter.toml < NEWSLETTER_* environment < flags."""
    env = dict(os.environ if environ is None else environ)
    ws = Path(workspace or env.get("NEWSLETTER_WORKSPACE") or ".").resolve()
    path = ws / CONFIG_FILE
    values = {s: {k: (list(d) if isinstance(d, list) else d) for k, (_, d) in keys.items()}
              for s, keys in SCHEMA.items()}
    values["languages"] = {}
    for layer in (_from_file(read_toml(path), path), _from_env(env), overrides or {}):
        for section, keys in layer.items():
            values[section].update(keys)
    for section in ("newsletter", "smtp"):
        for key, (kind, _) in SCHEMA[section].items():
            if kind is Secret:
                values[section][key] = Secret(values[section][key] or "")
    olds = values["newsletter"]["old_secret_keys"]
    values["newsletter"]["old_secret_keys"] = [Secret(k) for k in olds]
    tables: dict[tuple[str, str], dict[str, str]] = {}
    for section, keys in SCHEMA.items():
        for key, (kind, _) in keys.items():
            if kind is Text and isinstance(values[section][key], dict):
                tables[(section, key)] = dict(values[section][key])
    default = str(values["newsletter"]["default_language"])
    for (section, key), table in tables.items():
        values[section][key] = pick(table, default, default)
    _validate(values)
    return Settings(workspace=ws, values=values, tables=tables)
