"""DNS look-ups for the doctor (dnspython): short timeouts, answers as plain strings.

A missing name or record is an empty answer. A resolver that does not answer raises
DnsUnavailable once, and every later look-up fails at once instead of waiting again.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.exception
import dns.name
import dns.resolver
import dns.reversename

from newsletter.errors import NewsletterError

EDNS_PAYLOAD = 1232  # DKIM keys of 2048 bits do not fit the 512 bytes of plain DNS over UDP


class DnsUnavailable(NewsletterError):
    """The resolver did not answer (down, timed out or refusing)."""


def parse_nameserver(value: str) -> tuple[str, int]:
    """'HOST', 'HOST:PORT' or '[V6]:PORT' as (ip, port); a clear error otherwise."""
    host, port = value.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise NewsletterError(f"resolver: expected an IP address and optional port "
                              f"(127.0.0.1:5353), got {value!r}") from None
    if not 0 < number < 65536:
        raise NewsletterError(f"resolver: port out of range in {value!r}")
    return host, number


class DnsLookup:
    """Answers TXT, A/AAAA, MX and PTR questions through one resolver."""

    def __init__(self, nameserver: str = "", timeout: float = 3.0) -> None:
        if nameserver:
            host, port = parse_nameserver(nameserver)
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [host]
            resolver.port = port
        else:
            try:
                resolver = dns.resolver.Resolver()
            except dns.exception.DNSException as exc:
                raise DnsUnavailable(f"no DNS resolver configured: {exc}") from None
        resolver.timeout = resolver.lifetime = timeout
        resolver.use_edns(0, 0, EDNS_PAYLOAD)
        self.resolver = resolver
        self.down: str = ""

    def _answer(self, name: str | dns.name.Name, rdtype: str) -> list[Any]:
        if self.down:
            raise DnsUnavailable(self.down)
        try:
            return list(self.resolver.resolve(name, rdtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            self.down = f"DNS resolver {self.describe()} did not answer ({exc})"
            raise DnsUnavailable(self.down) from None
        except dns.exception.DNSException as exc:
            raise DnsUnavailable(f"DNS look-up of {name} {rdtype} failed: {exc}") from None

    def describe(self) -> str:
        """The resolver in use, for messages."""
        return ", ".join(f"{ns}:{self.resolver.port}" for ns in self.resolver.nameservers)

    def txt(self, name: str) -> list[str]:
        """Every TXT record at `name`, its strings joined."""
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self._answer(name, "TXT")]

    def addresses(self, name: str) -> list[str]:
        """IPv4 then IPv6 addresses of `name`."""
        return [r.address for kind in ("A", "AAAA") for r in self._answer(name, kind)]

    def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, host) pairs, best first; a null MX shows as (0, '')."""
        found = [(r.preference, "" if r.exchange == dns.name.root
                  else r.exchange.to_text(omit_final_dot=True)) for r in self._answer(name, "MX")]
        return sorted(found)

    def ptr(self, ip: str) -> list[str]:
        """Names the reverse zone gives for `ip`."""
        reverse = dns.reversename.from_address(ip)
        return [r.target.to_text(omit_final_dot=True) for r in self._answer(reverse, "PTR")]
