"""The chain of rules: all of them run, in this order, and each returns one result (the
relays rule: one per `[[smtp.relays]]` entry)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dns.exception

from newsletter.config import Settings
from newsletter.doctor import dmarc, domainkey, endpoints, mailhost, relay, spf
from newsletter.doctor.checks import CheckResult, Rule, fail
from newsletter.doctor.context import DoctorContext
from newsletter.doctor.lookup import DnsLookup, DnsUnavailable
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.delivery.relayview import RelayOut

RULES: tuple[Rule, ...] = (
    Rule("spf", "the From domain's SPF allows the relay", spf.check_from_spf),
    Rule("spf-bounce-domain", "the Return-Path domain's SPF allows the relay",
         spf.check_bounce_spf),
    Rule("dkim", "the published DKIM key matches the configured one", domainkey.check_dkim),
    Rule("dmarc", "the From domain has a DMARC policy", dmarc.check_dmarc),
    Rule("dmarc-alignment", "DKIM and Return-Path domains align with From",
         dmarc.check_alignment),
    Rule("bounce-mx", "the bounce domain has an MX", mailhost.check_bounce_mx),
    Rule("relay-ptr", "the relay's PTR is forward-confirmed and matches its name",
         mailhost.check_relay_ptr),
    Rule("smtp-greeting", "the relay greets with 220", relay.check_greeting),
    Rule("smtp-starttls", "the hop to the relay is encrypted when it needs to be",
         relay.check_starttls),
    Rule("smtp-auth", "the relay offers AUTH when a user is set", relay.check_auth),
    Rule("smtp-relay", "each of several relays answers, and which are out of the sends",
         relay.check_each_relay),
    Rule("base-url-https", "base_url is https", endpoints.check_https),
    Rule("base-url-reachable", "base_url answers", endpoints.check_reachable),
    Rule("healthz", "the web app is healthy", endpoints.check_healthz),
    Rule("unsubscribe-url", "unsubscribe links reach the web app", endpoints.check_unsubscribe),
    Rule("archive-url", "the archive is published", endpoints.check_archive),
)


def run_rule(rule: Rule, ctx: DoctorContext) -> Sequence[CheckResult]:
    """One rule's results; a network failure becomes a fail result, never an exception."""
    try:
        found = rule.check(ctx)
        return (found,) if isinstance(found, CheckResult) else tuple(found)
    except DnsUnavailable as exc:
        return (fail(rule.name, str(exc), "check the DNS resolver ([doctor] nameserver or "
                     "--resolver HOST:PORT) and the network"),)
    except (NewsletterError, OSError, dns.exception.DNSException) as exc:
        return (fail(rule.name, f"{type(exc).__name__}: {exc}", "see the detail above"),)


def run_doctor(settings: Settings, *, nameserver: str = "", timeout: float | None = None,
               relays_out: Sequence[RelayOut] = ()) -> tuple[CheckResult, ...]:
    """Run every rule against these settings; the DNS server may be given as HOST:PORT;
    `relays_out`: the relays out of the sends in the shared view (delivery/relayview.py)."""
    section = settings.doctor
    wait = timeout if timeout is not None else section.timeout
    lookup = DnsLookup(nameserver or section.nameserver, timeout=wait)
    ctx = DoctorContext(settings, lookup, timeout=wait, relays_out=tuple(relays_out))
    return tuple(result for rule in RULES for result in run_rule(rule, ctx))
