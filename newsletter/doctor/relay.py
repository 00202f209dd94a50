"""The relay over SMTP: greeting, STARTTLS and AUTH, from one short conversation."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.delivery.relay import every_relay
from newsletter.doctor.checks import CheckResult, fail, ok, warn

if TYPE_CHECKING:
    from newsletter.doctor.context import DoctorContext


@dataclass(frozen=True)
class RelayProbe:
    """What the relay said; `error` is set when the conversation broke off."""

    greeting: str = ""
    name: str = ""  # the host name the relay announces in its greeting
    starttls: bool = False  # offered
    tls_error: str = ""  # the STARTTLS handshake failed with this
    auth: tuple[str, ...] = ()  # AUTH mechanisms offered (after TLS when TLS is used)
    error: str = ""


def probe_relay(host: str, port: int, tls: str, timeout: float) -> RelayProbe:
    """Connect, EHLO, STARTTLS when configured, EHLO again; never raises."""
    context = ssl.create_default_context()
    try:
        client = (smtplib.SMTP_SSL(timeout=timeout, context=context) if tls == "tls"
                  else smtplib.SMTP(timeout=timeout))
        code, text = client.connect(host, port)
    except (OSError, smtplib.SMTPException) as exc:
        return RelayProbe(error=f"cannot connect to {host}:{port}: {exc}")
    greeting = f"{code} {text.decode('utf-8', 'replace')}"
    name = text.decode("utf-8", "replace").split(" ", 1)[0] if text else ""
    try:
        if code != 220:
            return RelayProbe(greeting=greeting, name=name, error=f"greeting was {greeting}")
        client.ehlo()
        offered = client.has_extn("starttls")
        tls_error = ""
        if offered and tls == "starttls":
            try:
                client.starttls(context=context)
                client.ehlo()
            except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
                tls_error = str(exc) or type(exc).__name__
        auth = tuple(client.esmtp_features.get("auth", "").upper().split())
        return RelayProbe(greeting, name, offered, tls_error, auth)
    except (OSError, smtplib.SMTPException) as exc:
        return RelayProbe(greeting=greeting, name=name, error=f"relay broke off: {exc}")
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


def check_greeting(ctx: DoctorContext) -> CheckResult:
    """The relay answers with a 220 greeting."""
    probe, relay = ctx.relay_probe, ctx.relay
    if probe.error:
        return fail("smtp-greeting", probe.error,
                    f"check [smtp] host and port ({relay.host}:{relay.port}) and that the "
                    "relay accepts connections from this machine")
    return ok("smtp-greeting", probe.greeting)


def check_starttls(ctx: DoctorContext) -> CheckResult:
    """The hop to the relay is encrypted when it leaves this machine."""
    probe, tls = ctx.relay_probe, ctx.relay.tls
    name = "smtp-starttls"
    if probe.error:
        return fail(name, "relay not reached", "fix smtp-greeting first")
    if tls == "tls":
        return ok(name, "implicit TLS ([smtp] tls = tls)")
    if tls == "starttls":
        if not probe.starttls:
            return fail(name, "[smtp] tls = starttls but the relay does not offer STARTTLS",
                        "enable STARTTLS on the relay, or use its TLS port with [smtp] tls = tls")
        if probe.tls_error:
            return fail(name, f"STARTTLS handshake failed: {probe.tls_error}",
                        "give the relay a certificate valid for [smtp] host")
        return ok(name, "STARTTLS offered and the handshake succeeded")
    if ctx.relay_is_local:
        return ok(name, "relay on this machine: no TLS needed ([smtp] tls = none)")
    if probe.starttls:
        return warn(name, "the relay offers STARTTLS but [smtp] tls = none: mail and password "
                    "cross the network in clear", "set [smtp] tls = starttls")
    return warn(name, "relay on another machine without STARTTLS: mail crosses the network in "
                "clear", "enable STARTTLS on the relay and set [smtp] tls = starttls")


def check_auth(ctx: DoctorContext) -> CheckResult:
    """When a user is set, the relay offers AUTH (after TLS, where TLS is used)."""
    probe, user = ctx.relay_probe, ctx.relay.user
    name = "smtp-auth"
    if probe.error:
        return fail(name, "relay not reached", "fix smtp-greeting first")
    if not user:
        return ok(name, "no [smtp] user: the relay takes mail without logging in")
    if not probe.auth:
        return fail(name, f"[smtp] user is {user!r} but the relay offers no AUTH",
                    "most relays offer AUTH only over TLS: set [smtp] tls = starttls (or tls); "
                    "else enable AUTH on the relay or clear [smtp] user")
    return ok(name, f"AUTH offered: {' '.join(probe.auth)}")


def check_each_relay(ctx: DoctorContext) -> list[CheckResult]:
    """With `[[smtp.relays]]`: one line per relay, by name: does it greet, and is it out of
    the sends in the shared view (delivery/relayview.py), until when. None without."""
    out = {o.name: o for o in ctx.relays_out}
    results = []
    for relay in every_relay(ctx.settings) if ctx.settings.smtp.relays else ():
        name = relay.name or relay.describe()
        check = f"smtp-relay:{name}"
        probe = probe_relay(relay.host, relay.port, relay.tls, ctx.timeout)
        state = (f"greets with {probe.greeting}" if not probe.error
                 else f"unreachable ({probe.error})")
        taken = out.get(name)
        if taken is not None:
            until = f"{taken.until:%Y-%m-%d %H:%M:%S} UTC"
            results.append(warn(
                check, f"{relay.describe()} out of every send until {until} "
                f"({taken.reason}); now {state}",
                "nothing to do if it recovered: the workers take it back after the cool-down "
                "([smtp] cooldown); else fix the relay or remove it from [[smtp.relays]]"))
        elif probe.error:
            results.append(fail(check, f"{relay.describe()} {state}",
                                f"check the host and port of [[smtp.relays]] {name!r}; until "
                                "then the other relays carry its messages"))
        else:
            results.append(ok(check, f"{relay.describe()} {state}"))
    return results
