"""DNS of the mail hosts: the bounce domain's MX, and the relay's reverse DNS and name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from newsletter.doctor.checks import CheckResult, fail, ok, warn

if TYPE_CHECKING:
    from newsletter.doctor.context import DoctorContext


def check_bounce_mx(ctx: DoctorContext) -> CheckResult:
    """Bounces can reach us: the Return-Path domain has an MX."""
    domain, name = ctx.bounce_domain, "bounce-mx"
    fix = (f"publish an MX record for {domain} pointing at the host that runs "
           "`newsletter bounces serve` on port 25")
    records = ctx.dns.mx(domain)
    if not records:
        return fail(name, f"{domain} has no MX record: bounces will not come back", fix)
    if records == [(0, "")]:
        return fail(name, f"{domain} has a null MX (it accepts no mail)", fix)
    shown = ", ".join(f"{pref} {host}" for pref, host in records)
    missing = [host for _, host in records if not ctx.dns.addresses(host)]
    if missing:
        return fail(name, f"MX of {domain}: {shown}; {', '.join(missing)} has no address",
                    f"publish an A or AAAA record for {missing[0]}")
    return ok(name, f"MX of {domain}: {shown}")


def check_relay_ptr(ctx: DoctorContext) -> CheckResult:
    """Each relay address has a PTR that points back to it and names the relay."""
    name = "relay-ptr"
    announced = ctx.relay_probe.name.rstrip(".").lower()
    if not ctx.relay_ips:
        return fail(name, f"the relay {ctx.relay_host} has no address in DNS",
                    "set [smtp] host to a name with an A or AAAA record, or to an IP")
    seen = []
    for ip in ctx.relay_ips:
        names = [n.rstrip(".").lower() for n in ctx.dns.ptr(ip)]
        target = announced or "the relay's host name"
        if not names:
            return fail(name, f"{ip} has no PTR record (many receivers refuse such senders)",
                        f"ask whoever owns {ip} (your hosting provider) to set its reverse DNS "
                        f"to {target}")
        confirmed = [n for n in names if ip in ctx.dns.addresses(n)]
        if not confirmed:
            return fail(name, f"PTR of {ip} is {names[0]}, which does not resolve back to {ip}",
                        f"publish an A/AAAA record {names[0]} -> {ip}, or change the PTR")
        seen.append((ip, confirmed))
    shown = "; ".join(f"{ip} -> {', '.join(names)}" for ip, names in seen)
    if announced and any(announced not in names for _, names in seen):
        return warn(name, f"{shown} (forward-confirmed), but the relay calls itself {announced}",
                    f"make the relay's HELO name {seen[0][1][0]} (Postfix: myhostname / "
                    "smtp_helo_name), or set the PTR to its name")
    return ok(name, f"{shown}, forward-confirmed" + (f", matching HELO {announced}"
                                                      if announced else ""))
