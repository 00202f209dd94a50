"""Every setting's name, type and default, one frozen dataclass per newsletter.toml section.

config.py loads and checks the values; `Settings.smtp` and the like give them back typed.
docs/configuration.md documents each one (tests/test_configuration_docs.py keeps it complete).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any


class Text(str):
    """Marks a setting readers see: one string, or a table {language: text} (localized.py)."""


class Secret(str):
    """A string that never shows its value in repr or logs."""

    def __repr__(self) -> str:
        return "Secret('**********')" if self else "Secret('')"


# One frozen dataclass per section: the attribute names, types and defaults of every setting.
# SCHEMA (section -> key -> (type, default)) is derived from them for the loader and the docs
# test. Types: str, int, float, bool, list, dict, Secret, Text. [languages.<code>] tables (date
# locale and format per language) are checked by localized.py.


@dataclass(frozen=True)
class NewsletterSettings:
    name: Text = Text("Newsletter")
    organisation: Text = Text("")
    postal_address: Text = Text("")
    masthead: Text = Text("")
    base_url: str = "http://127.0.0.1:8000"
    from_address: str = "newsletter@example.org"
    from_name: Text = Text("")
    reply_to: str = ""
    sender_id: str = "newsletter"
    list_id_domain: str = "lists.example.org"
    message_id_domain: str = ""
    secret_key: Secret = Secret("")
    old_secret_keys: list[Secret] = field(default_factory=list)
    default_language: str = "en"
    social_links: list[Any] = field(default_factory=list)
    logo_url: str = ""


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///newsletter.db"


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 8025
    tls: str = "none"
    user: str = ""
    password: Secret = Secret("")
    workers: int = 0  # sender processes; 0: one per two CPU cores
    connections: int = 4
    messages_per_connection: int = 1000
    rate: float = 0.0
    timeout: float = 30.0
    batch_size: int = 200
    retry_delay: float = 60.0
    retry_window: float = 900.0
    max_attempts: int = 8
    lease: float = 300.0
    relays: list[RelaySettings] = field(default_factory=list)  # [[smtp.relays]]; empty: the above
    cooldown: float = 60.0  # seconds a failing relay of several is left out
    domain_limits: dict[str, float] = field(default_factory=dict)  # domain -> messages/second


@dataclass(frozen=True)
class RelaySettings:
    """One [[smtp.relays]] entry: a relay of several, its connections, limits and share."""

    name: str = ""  # in reports; empty: host:port
    host: str = ""
    port: int = 25
    tls: str = "none"
    user: str = ""
    password: Secret = Secret("")
    connections: int = 4  # at most this many of a worker's connections
    rate: float = 0.0  # messages per second, shared by the workers; 0: no limit
    hourly: int = 0  # messages per hour, shared by the workers; 0: no limit
    weight: float = 1.0  # its share of the connections


@dataclass(frozen=True)
class SendSettings:
    test_subject_prefix: str = "[TEST] "  # on `send --test-to` copies; "" turns it off
    publish_check: bool = True


@dataclass(frozen=True)
class BouncesSettings:
    domain: str = "bounces.example.org"
    local_part: str = "bounces"
    host: str = "127.0.0.1"
    port: int = 2525
    soft_limit: int = 5
    soft_days: float = 7.0
    keep_unmatched: str = ""
    postmaster_maildir: str = "bounces/postmaster"


@dataclass(frozen=True)
class DkimSettings:
    key_path: str = ""
    selector: str = ""
    domain: str = ""


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    css_url: str = ""
    confirm_days: int = 7
    max_confirmations_per_address: int = 3
    max_subscribes_per_ip: int = 20
    welcome: dict[str, Any] = field(default_factory=dict)
    consent_text: dict[str, Any] = field(default_factory=dict)
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    outbox_interval: float = 5.0


@dataclass(frozen=True)
class ArchiveSettings:
    out: str = "site"
    base_url: str = ""
    per_page: int = 20
    titles: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AudienceSettings:
    pending_days: int = 30


@dataclass(frozen=True)
class DoctorSettings:
    nameserver: str = ""  # HOST[:PORT]; empty: the system resolver
    timeout: float = 5.0


@dataclass(frozen=True)
class CaptureSettings:
    host: str = "127.0.0.1"
    port: int = 8025
    maildir: str = "maildir"


SECTIONS: dict[str, type] = {
    "newsletter": NewsletterSettings, "database": DatabaseSettings, "smtp": SmtpSettings,
    "send": SendSettings, "bounces": BouncesSettings, "dkim": DkimSettings, "web": WebSettings,
    "archive": ArchiveSettings, "audience": AudienceSettings, "doctor": DoctorSettings,
    "capture": CaptureSettings,
}
_KINDS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool, "list": list,
                           "dict": dict, "Secret": Secret, "Text": Text}


def _schema(cls: type) -> dict[str, tuple[type, Any]]:
    """key -> (type, default) of one section, read from its dataclass."""
    out = {}
    for item in fields(cls):
        kind = _KINDS[str(item.type).split("[", 1)[0]]
        default = item.default if item.default is not MISSING else item.default_factory()  # type: ignore[operator]
        out[item.name] = (kind, default)
    return out


SCHEMA: dict[str, dict[str, tuple[type, Any]]] = {
    name: _schema(cls) for name, cls in SECTIONS.items()
}

# Settings that are lists of tables ([[smtp.relays]]): SCHEMA gives them as a list; each entry
# is checked against its own schema and read as its dataclass (config.py).
TABLE_LISTS: dict[tuple[str, str], type] = {("smtp", "relays"): RelaySettings}
ENTRY_SCHEMA: dict[tuple[str, str], dict[str, tuple[type, Any]]] = {
    where: _schema(cls) for where, cls in TABLE_LISTS.items()
}
