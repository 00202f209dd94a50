"""SPF (RFC 7208): does the domain's record allow the relay's addresses?

A small evaluator of the mechanisms senders use (ip4, ip6, a, mx, include, exists, all and
redirect=), with the RFC's limit of 10 DNS-querying terms. Macros are not expanded: a record
that needs them is reported as not checked rather than guessed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.doctor.checks import CheckResult, fail, ok, warn
from newsletter.doctor.lookup import DnsLookup

if TYPE_CHECKING:
    from newsletter.doctor.context import DoctorContext

MAX_LOOKUPS = 10  # RFC 7208 §4.6.4
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
RESULTS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


class SpfError(Exception):
    """The record cannot be evaluated (permerror in RFC 7208 terms)."""


class SpfUnchecked(Exception):
    """The record uses what this evaluator does not expand (macros)."""


@dataclass(frozen=True)
class SpfVerdict:
    """The SPF result for one IP, and the term that decided it."""

    result: str  # pass, fail, softfail, neutral, none, permerror, unchecked
    term: str = ""
    reason: str = ""


def spf_record(dns: DnsLookup, domain: str) -> str | None:
    """The one v=spf1 TXT record of `domain`, None when there is none."""
    records = [t for t in dns.txt(domain) if t.lower().split(" ")[0] == "v=spf1"]
    if len(records) > 1:
        raise SpfError(f"{domain} has {len(records)} SPF records (only one is allowed)")
    return records[0] if records else None


def evaluate(dns: DnsLookup, domain: str, ip: str) -> SpfVerdict:
    """check_host() for `ip` sending as `domain`."""
    budget = [MAX_LOOKUPS]
    try:
        return _check(dns, domain, ipaddress.ip_address(ip), budget)
    except SpfError as exc:
        return SpfVerdict("permerror", reason=str(exc))
    except SpfUnchecked as exc:
        return SpfVerdict("unchecked", reason=str(exc))


def _spend(budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise SpfError(f"more than {MAX_LOOKUPS} DNS look-ups (include, a, mx, exists, redirect)")


def _check(dns: DnsLookup, domain: str, ip: IP, budget: list[int]) -> SpfVerdict:
    record = spf_record(dns, domain)
    if record is None:
        return SpfVerdict("none", reason=f"no SPF record at {domain}")
    redirect = ""
    for term in record.split()[1:]:
        name, sep, value = term.partition("=")
        if sep and ":" not in name and "/" not in name:
            if name.lower() == "redirect":
                redirect = value
            continue
        qualifier = term[0] if term[0] in RESULTS else "+"
        if _matches(dns, domain, term.lstrip("+-~?"), ip, budget):
            return SpfVerdict(RESULTS[qualifier], term=term)
    if redirect:
        _spend(budget)
        inner = _check(dns, redirect, ip, budget)
        if inner.result == "none":
            raise SpfError(f"redirect={redirect} has no SPF record")
        return inner
    return SpfVerdict("neutral", reason="no term matched and the record has no all")


def _matches(dns: DnsLookup, domain: str, term: str, ip: IP,
             budget: list[int]) -> bool:
    mechanism, _, arg = term.partition(":")
    mechanism, _, cidr = mechanism.partition("/")  # a/24, mx/24
    mechanism = mechanism.lower()
    arg, _, arg_cidr = arg.partition("/")
    cidr = (cidr or arg_cidr).split("/")[0]  # a/24//64: the IPv4 length only
    if "%" in arg:
        raise SpfUnchecked(f"{term!r} uses a macro, which is not evaluated here")
    if mechanism == "all":
        return True
    if mechanism in ("ip4", "ip6"):
        try:
            return ip in ipaddress.ip_network(f"{arg}/{cidr}" if cidr else arg, strict=False)
        except ValueError:
            raise SpfError(f"bad network in {term!r}") from None
    if mechanism not in ("a", "mx", "include", "exists", "ptr"):
        raise SpfError(f"unknown mechanism {term!r}")
    _spend(budget)
    target = arg or domain
    if mechanism == "include":
        inner = _check(dns, target, ip, budget)
        if inner.result in ("none", "permerror"):
            raise SpfError(f"include:{target} has no usable SPF record")
        return inner.result == "pass"
    if mechanism == "exists":
        return bool(dns.addresses(target))
    if mechanism == "ptr":  # deprecated (RFC 7208 §5.5); receivers may ignore it
        return False
    hosts = [host for _, host in dns.mx(target)][:10] if mechanism == "mx" else [target]
    return any(_in(ip, address, cidr) for host in hosts for address in dns.addresses(host))


def _in(ip: IP, address: str, cidr: str) -> bool:
    other = ipaddress.ip_address(address)
    if other.version != ip.version:
        return False
    prefix = cidr if cidr and other.version == 4 else str(other.max_prefixlen)
    return ip in ipaddress.ip_network(f"{address}/{prefix}", strict=False)


def _mechanism_for(ip: str) -> str:
    return f"ip{ipaddress.ip_address(ip).version}:{ip}"


def check_spf(ctx: DoctorContext, domain: str, name: str) -> CheckResult:
    """The SPF record of `domain` allows every address of the relay."""
    ips = ctx.relay_ips
    if not ips:
        return fail(name, f"the relay {ctx.relay_host} has no address in DNS",
                    "set [smtp] host to a name with an A or AAAA record, or to an IP")
    verdicts = {ip: evaluate(ctx.dns, domain, ip) for ip in ips}
    adds = " ".join(_mechanism_for(ip) for ip, v in verdicts.items() if v.result != "pass")
    first = next(iter(verdicts.values()))
    if first.result == "none":
        return fail(name, first.reason, f'publish a TXT record at {domain}: "v=spf1 {adds} ~all"')
    broken = [v for v in verdicts.values() if v.result == "permerror"]
    if broken:
        return fail(name, f"SPF of {domain} cannot be evaluated: {broken[0].reason}",
                    "simplify the record: one v=spf1 record, at most 10 include/a/mx/exists, "
                    "known mechanisms with valid networks")
    unchecked = [v for v in verdicts.values() if v.result == "unchecked"]
    if unchecked:
        return warn(name, f"SPF of {domain} not checked: {unchecked[0].reason}",
                    f"check by hand that the SPF record of {domain} allows {adds}")
    if adds:
        said = ", ".join(f"{ip} gets {v.result}" for ip, v in verdicts.items()
                         if v.result != "pass")
        return fail(name, f"SPF of {domain} does not allow the relay: {said}",
                    f"add {adds} to the SPF record of {domain}, before its all")
    record = spf_record(ctx.dns, domain) or ""
    allowed = ", ".join(f"{ip} by {v.term}" for ip, v in verdicts.items())
    if any(t.lower() in ("all", "+all") for t in record.split()[1:]):
        return warn(name, f"SPF of {domain} allows any sender (+all)",
                    f"end the SPF record of {domain} with ~all or -all")
    return ok(name, f"SPF of {domain} allows the relay: {allowed}")


def check_from_spf(ctx: DoctorContext) -> CheckResult:
    """SPF of the From domain."""
    return check_spf(ctx, ctx.from_domain, "spf")


def check_bounce_spf(ctx: DoctorContext) -> CheckResult:
    """SPF of the Return-Path (bounce) domain: the one receivers actually check."""
    if ctx.bounce_domain == ctx.from_domain:
        return ok("spf-bounce-domain", "the bounce domain is the From domain (checked above)")
    return check_spf(ctx, ctx.bounce_domain, "spf-bounce-domain")
