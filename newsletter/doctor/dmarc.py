"""DMARC (RFC 7489): a policy for the From domain, and alignment of DKIM and SPF with it.

Alignment is kept simple: relaxed mode accepts the same organisational domain, taken as
the last two labels (three under a country code's short second level, as in example.co.uk);
strict mode needs the very same domain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from newsletter.delivery.dkim import DkimError, load_dkim
from newsletter.doctor.checks import CheckResult, fail, ok, warn
from newsletter.doctor.domainkey import tags
from newsletter.doctor.lookup import DnsLookup

if TYPE_CHECKING:
    from newsletter.doctor.context import DoctorContext

POLICIES = ("none", "quarantine", "reject")


def organisational_domain(domain: str) -> str:
    """A cheap stand-in for the public suffix list: example.org, example.co.uk."""
    labels = domain.split(".")
    keep = 3 if len(labels) > 2 and len(labels[-1]) == 2 and len(labels[-2]) <= 3 else 2
    return ".".join(labels[-keep:])


def aligned(domain: str, from_domain: str, mode: str) -> bool:
    """Whether `domain` aligns with the From domain in strict (s) or relaxed (r) mode."""
    if mode == "s":
        return domain == from_domain
    return organisational_domain(domain) == organisational_domain(from_domain)


def dmarc_record(dns: DnsLookup, domain: str) -> tuple[str, dict[str, str]] | None:
    """(where, tags) of the DMARC record for `domain`, or of its organisational domain."""
    for candidate in dict.fromkeys((domain, organisational_domain(domain))):
        name = f"_dmarc.{candidate}"
        for text in dns.txt(name):
            if text.replace(" ", "").lower().startswith("v=dmarc1"):
                return name, tags(text)
    return None


def check_dmarc(ctx: DoctorContext) -> CheckResult:
    """A DMARC record exists for the From domain, with a policy that does something."""
    domain, name = ctx.from_domain, "dmarc"
    found = dmarc_record(ctx.dns, domain)
    suggested = (f'publish a TXT record at _dmarc.{domain}: '
                 f'"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"')
    if found is None:
        return fail(name, f"no DMARC record for {domain} (Gmail and Yahoo require one from "
                    "bulk senders)", suggested)
    where, record = found
    policy = record.get("p", "").lower()
    if policy not in POLICIES:
        return fail(name, f"{where} has no valid p= policy (got {policy or 'nothing'!r})",
                    suggested)
    modes = f"adkim={record.get('adkim', 'r')}, aspf={record.get('aspf', 'r')}"
    if policy == "none":
        return warn(name, f"{where}: p=none ({modes}): failing mail is delivered anyway, so "
                    "anyone may send as this domain",
                    "once the reports show only your own mail, raise it to p=quarantine or "
                    "p=reject")
    return ok(name, f"{where}: p={policy} ({modes})")


def check_alignment(ctx: DoctorContext) -> CheckResult:
    """DKIM d= and the Return-Path domain align with the From domain (one is enough)."""
    domain, name = ctx.from_domain, "dmarc-alignment"
    found = dmarc_record(ctx.dns, domain)
    record = found[1] if found else {}
    try:
        signer = load_dkim(ctx.settings)
    except DkimError:
        signer = None  # the dkim rule reports why
    dkim_domain = signer.domain.decode() if signer else ""
    dkim_ok = bool(dkim_domain) and aligned(dkim_domain, domain, record.get("adkim", "r"))
    spf_ok = aligned(ctx.bounce_domain, domain, record.get("aspf", "r"))
    said = (f"DKIM d={dkim_domain or '(not signing)'} "
            f"{'aligns' if dkim_ok else 'does not align'}, Return-Path {ctx.bounce_domain} "
            f"{'aligns' if spf_ok else 'does not align'} with From {domain}")
    if dkim_ok and spf_ok:
        return ok(name, said)
    if dkim_ok or spf_ok:
        what = ("set [dkim] domain to the From domain (or a subdomain of it)" if not dkim_ok
                else f"set [bounces] domain to a subdomain of {domain}")
        leg = ("DKIM alone, so a broken signature fails DMARC" if dkim_ok
               else "SPF alone, which forwarding breaks")
        return warn(name, f"{said}: DMARC rests on {leg}", what)
    return fail(name, said + ": DMARC will fail",
                f"sign with DKIM for {domain} ([dkim] domain) and use a bounce domain under "
                f"{domain} ([bounces] domain)")
