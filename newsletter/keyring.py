"""The keyring: the link signer, which rotates, and the address key, which never does.

Two keys with two jobs:

- The secret key (`[newsletter] secret_key`, plus `old_secret_keys` while links signed with an
  earlier key are still around) signs the links in mails: confirm, preferences, unsubscribe,
  VERP. Rotating it is routine; old keys keep verifying until they are dropped.
- The address key hashes addresses on the suppression list (hard bounces, complaints,
  erasures). A suppression is a hash, never an address, so it can only be matched by hashing
  with the very same key again. If that key rotated, every suppression would stop matching and
  bounced or erased people would be mailed and imported again. So it never rotates.

The address key lives in the database (table `keyring`, row `address_key`), not in settings:
every host that shares the database then hashes with the same key without anyone copying it,
and a key rotation in newsletter.toml cannot touch it. Migration 0003 fills it with the secret
key of the day for a database that already had suppressions (their hashes stay valid) and with
a random key otherwise. The trade-off: whoever holds a dump of the database also holds the key,
and can test whether a given address is suppressed. They cannot list the suppressed addresses,
and such a dump already holds every subscriber's address in clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Connection, Engine, select

from newsletter.config import Settings
from newsletter.db.tables import KEYRING
from newsletter.errors import NewsletterError
from newsletter.tokens import KeyedHmac, Signer

ADDRESS_KEY = "address_key"


class KeyringError(NewsletterError):
    """A key is missing or cannot be used."""


def address_hash(email: str, key: str) -> str:
    """Keyed hash of a normalized address, as kept on the suppression list: HMAC-SHA256.

    The key's HMAC states are made once per key and copied for each address (KeyedHmac): an
    import hashes every row's address, and so does each claim of the sender.
    """
    return _keyed(key).digest(email.lower().encode()).hex()


@lru_cache(maxsize=4)
def _keyed(key: str) -> KeyedHmac:
    return KeyedHmac(key)


def link_signer(settings: Settings) -> Signer:
    """The signer for links: the current secret key signs, old keys still verify.

    The signer refuses an empty secret key, with one line saying where to set it.
    """
    return Signer(settings.secret_key, settings.newsletter.old_secret_keys)


def read_address_key(conn: Connection) -> str:
    """The database's address key; a database without one has not been migrated."""
    key = conn.execute(select(KEYRING.c.value).where(KEYRING.c.name == ADDRESS_KEY)).scalar()
    if not key:
        raise KeyringError("the database has no address key: run `newsletter db upgrade`")
    return str(key)


@dataclass(frozen=True)
class Keyring:
    """Both keys of one process, read once."""

    signer: Signer
    address_key: str

    def __repr__(self) -> str:
        return "Keyring(signer=..., address_key='**********')"

    def hash_address(self, email: str) -> str:
        """The suppression-list hash of an address."""
        return address_hash(email, self.address_key)


def load_keyring(settings: Settings, engine: Engine) -> Keyring:
    """The keyring for these settings and this database.

    An empty secret key is refused even by commands that only hash: a deployment without one
    is misconfigured, and its links would be refused later anyway.
    """
    signer = link_signer(settings)
    with engine.connect() as conn:
        return Keyring(signer=signer, address_key=read_address_key(conn))
