"""What the rules look at: settings, a DNS resolver, and facts found once and shared."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from newsletter.config import Settings
from newsletter.delivery.relay import Relay
from newsletter.doctor.lookup import DnsLookup
from newsletter.doctor.relay import RelayProbe, probe_relay
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.delivery.relayview import RelayOut


def domain_of(address: str) -> str:
    """The domain part of an address, lowercased, without a trailing dot."""
    return address.rpartition("@")[2].strip().rstrip(".").lower()


@dataclass
class DoctorContext:
    """Settings plus look-ups that several rules need (the relay's IPs, its SMTP probe)."""

    settings: Settings
    dns: DnsLookup
    timeout: float = 5.0
    relays_out: tuple[RelayOut, ...] = ()  # out of the sends in the shared view

    @cached_property
    def relay(self) -> Relay:
        """The relay the SMTP rules look at: `[[smtp.relays]]`'s first, else `[smtp]`'s."""
        return Relay.from_settings(self.settings)

    @property
    def from_domain(self) -> str:
        return domain_of(self.settings.newsletter.from_address)

    @property
    def bounce_domain(self) -> str:
        """The Return-Path (VERP) domain: what SPF is checked against."""
        return self.settings.bounces.domain.strip().rstrip(".").lower()

    @property
    def relay_host(self) -> str:
        return self.relay.host.strip()

    @cached_property
    def relay_ips(self) -> tuple[str, ...]:
        """The relay's addresses: the host itself when it is an IP, else its A and AAAA."""
        try:
            return (str(ipaddress.ip_address(self.relay_host)),)
        except ValueError:
            return tuple(self.dns.addresses(self.relay_host))

    @property
    def relay_is_local(self) -> bool:
        """True for a relay on this machine, where TLS on the hop adds nothing."""
        if self.relay_host.lower() == "localhost":
            return True
        try:
            ips = self.relay_ips
        except NewsletterError:  # DNS down: treat as remote, the DNS rules say why
            return False
        return bool(ips) and all(ipaddress.ip_address(ip).is_loopback for ip in ips)

    @cached_property
    def relay_probe(self) -> RelayProbe:
        """One SMTP conversation with the relay, shared by the SMTP and HELO rules."""
        relay = self.relay
        return probe_relay(relay.host, relay.port, relay.tls, self.timeout)
