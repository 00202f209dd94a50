"""Settings: defaults, then newsletter.toml, then environment (NEWSLETTER_*), then flags.

Every key is declared once in SCHEMA with its type and default, so a wrong key or value is
reported with its exact place ("newsletter.toml: [smtp] port: ...") instead of failing later.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from newsletter.configschema import (
    ENTRY_SCHEMA,
    SCHEMA,
    TABLE_LISTS,
    ArchiveSettings,
    AudienceSettings,
    BouncesSettings,
    CaptureSettings,
    DatabaseSettings,
    DkimSettings,
    DoctorSettings,
    NewsletterSettings,
    RelaySettings,
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
            if (section, key) in TABLE_LISTS:
                out.setdefault(section, {})[key] = _entries(value, section, key, path.name)
                continue
            out.setdefault(section, {})[key] = _coerce(value, kind, where,
                                                       is_secret(section, key))
    return out


def _entries(value: Any, section: str, key: str, source: str) -> list[Any]:
    """A list of tables ([[smtp.relays]]): each entry checked key by key, read as its class."""
    cls, schema = TABLE_LISTS[(section, key)], ENTRY_SCHEMA[(section, key)]
    head = f"{source}: [[{section}.{key}]]"
    if not isinstance(value, list):
        raise ConfigError(f"{head}: expected a list of tables, got {_shown(value)}")
    out = []
    for number, entry in enumerate(value, 1):
        where = f"{head} {_entry_label(number, entry)}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table, got {_shown(entry)}")
        typed = {}
        for name, item in entry.items():
            if name not in schema:
                known = ", ".join(schema)
                raise ConfigError(f"{where}: unknown key {name!r} (known: {known})")
            kind = schema[name][0]
            typed[name] = _coerce(item, kind, f"{where} {name}", kind is Secret)
            if kind is Secret:
                typed[name] = Secret(typed[name])
        out.append(cls(**typed))
    return out


def _entry_label(number: int, entry: Any) -> str:
    """How an error names a list entry: its place, and its name when it has one."""
    name = entry.get("name") if isinstance(entry, dict) else getattr(entry, "name", None)
    return f"#{number} ({name!r})" if isinstance(name, str) and name else f"#{number}"


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
            if name in environ and (section, key) in TABLE_LISTS:
                raise ConfigError(f"{name}: [[{section}.{key}]] entries can only be given in "
                                  f"{CONFIG_FILE}")
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
    if values["smtp"]["cooldown"] < 0:
        raise ConfigError("[smtp] cooldown: must be 0 or more")
    values["smtp"]["relays"] = check_relays(values["smtp"]["relays"])
    values["smtp"]["domain_limits"] = check_domain_limits(values["smtp"]["domain_limits"])
    base = values["newsletter"]["base_url"]
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"[newsletter] base_url: expected an http(s) URL, got {_shown(base)}")


def check_relays(entries: list[RelaySettings]) -> list[RelaySettings]:
    """Each [[smtp.relays]] entry usable, named (host:port when it has no name), names unique."""
    out: list[RelaySettings] = []
    for number, entry in enumerate(entries, 1):
        where = f"[[smtp.relays]] {_entry_label(number, entry)}"
        problem = _relay_problem(entry)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        named = replace(entry, name=entry.name or f"{entry.host}:{entry.port}")
        if any(other.name == named.name for other in out):
            raise ConfigError(f"{where}: another relay has the name {named.name!r}; give each "
                              "relay its own name")
        out.append(named)
    return out


def _relay_problem(entry: RelaySettings) -> str | None:
    """What makes one relay entry unusable, or None."""
    if not entry.host:
        return "host: required"
    if entry.tls not in TLS_MODES:
        return f"tls: expected one of {', '.join(TLS_MODES)}, got {_shown(entry.tls)}"
    if not 0 < entry.port <= 65535:
        return f"port: expected a port from 1 to 65535, got {entry.port}"
    if entry.weight <= 0:
        return f"weight: must be more than 0, got {entry.weight}"
    if entry.connections < 1:
        return f"connections: must be at least 1, got {entry.connections}"
    if entry.rate < 0 or entry.hourly < 0:
        return "rate and hourly: must be 0 (no limit) or more"
    if not entry.name.isprintable():
        return "name: one line of printable text"
    return None


def check_domain_limits(limits: dict[str, Any]) -> dict[str, float]:
    """[smtp.domain_limits]: lower-case domain -> messages per second, each more than 0."""
    out: dict[str, float] = {}
    for domain, limit in limits.items():
        where = f"[smtp.domain_limits] {domain!r}"
        if not domain or "@" in domain or not domain.isprintable():
            raise ConfigError(f"{where}: expected a domain such as \"gmail.com\"")
        number = _coerce(limit, float, where)
        if number <= 0:
            raise ConfigError(f"{where}: expected messages per second, more than 0, got {limit}")
        out[domain.strip().lower()] = number
    return out


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
