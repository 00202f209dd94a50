"""Microseconds to build one personalized message (fill + MIME + tokens, optionally DKIM).

    python bench/message_bench.py [--count 3000] [--issue 2026-11-coalition-update] [--capture 2000]

Builds the example issue's three languages with the real composer (about 20 KB of HTML each)
and times, per message: the composer's slot fill alone, the full MessageBuilder.build, the
same with DKIM (2048-bit RSA; OpenSSL's RSA when `cryptography` is installed, and dkimpy's
own pure-Python signing), and for comparison the obvious alternative,
email.message.EmailMessage with the same headers and parts. Minimum of 5 repeats, so other
processes on the machine disturb it less. `--capture N` also pushes N built messages through
`newsletter capture`'s server (aiosmtplib client, 4 connections, same process) into a Maildir.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import email.policy
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from newsletter.compose import Slots, compile_issue, load_issue
from newsletter.config import load_settings
from newsletter.delivery.capture import CaptureServer
from newsletter.delivery.dkim import load_dkim
from newsletter.delivery.message import MessageBuilder, Recipient
from newsletter.tokens import Signer

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-0123456789"


def per_call(func: Callable[[], object], count: int) -> float:
    """Best-of-5 microseconds per call."""
    return min(timeit.repeat(func, number=count, repeat=5)) / count * 1e6


def email_message_baseline(builder: MessageBuilder, r: Recipient, edition: object) -> bytes:
    """The same message with the standard library's EmailMessage (what we avoid)."""
    sender, data = builder.build(r)  # only for the header values
    html, text = edition.fill(Slots(name=r.name))  # type: ignore[attr-defined]
    msg = EmailMessage(policy=email.policy.SMTP)
    for key in ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
                "List-Unsubscribe-Post", "Feedback-ID", "Content-Language"):
        msg[key] = "x"
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="base64")
    return msg.as_bytes()


async def push(port: int, messages: list[tuple[str, str, bytes]], connections: int) -> None:
    """Send `messages` over `connections` persistent SMTP connections."""
    async def one(share: list[tuple[str, str, bytes]]) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30) as smtp:
            for sender, rcpt, data in share:
                await smtp.sendmail(sender, [rcpt], data)
    await asyncio.gather(*(one(messages[i::connections]) for i in range(connections)))


def capture_rate(builder: MessageBuilder, count: int, folder: Path) -> float:
    """Messages per second the capture server stores (client and server in this process)."""
    messages = []
    for n in range(count):
        sender, data = builder.build(Recipient(n, n, f"r{n}@example.net", "R", {}))
        messages.append((sender, f"r{n}@example.net", data))
    with CaptureServer(folder, port=0) as server:
        started = time.perf_counter()
        asyncio.run(push(server.port, messages, 4))
        return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--issue", default="2026-11-coalition-update")
    parser.add_argument("--capture", type=int, default=0, metavar="N")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="message-bench-"))
    key = work / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    settings = load_settings(work, environ={}, overrides={
        "newsletter": {"secret_key": SECRET, "base_url": "https://news.example.org",
                       "from_address": "news@example.org", "from_name": "Réseau Migrations"},
        "dkim": {"key_path": str(key), "selector": "bench", "domain": "example.org"},
    })
    source = load_issue(ROOT, args.issue)
    signer = Signer(SECRET)
    dkim = load_dkim(settings)
    r = Recipient(1, 1, "person1@example.net", "Amélie Dupont", {"organisation": "ACME"})
    print(f"python {sys.version.split()[0]}, {args.count} messages per timing, best of 5")
    print(f"DKIM engine: {dkim.engine if dkim else 'none'} (dkimpy column: pure-Python RSA)")
    print(f"{'lang':4} {'html KB':>7} {'msg KB':>7} {'fill':>8} {'build':>8} {'+DKIM':>8} "
          f"{'+dkimpy':>8} {'EmailMessage':>12}   (µs per message)")
    for lang in source.editions:
        edition = compile_issue(source, lang, settings)
        common = dict(settings=settings, edition=edition, issue_slug=source.slug, list_id=1,
                      list_slug="news", list_name="Coalition News", signer=signer)
        plain = MessageBuilder(**common)
        signed = MessageBuilder(**common, dkim=dkim)
        slow = MessageBuilder(**common, dkim=dataclasses.replace(dkim, rsa_key=None))
        size = len(plain.build(r)[1])
        fill = per_call(lambda e=edition: e.fill(Slots(name="Amélie", unsubscribe_url="u",
                                                       preferences_url="p", web_url="w")),
                        args.count)
        build = per_call(lambda b=plain: b.build(r), args.count)
        with_dkim = per_call(lambda b=signed: b.build(r), max(20, args.count // 10))
        with_dkimpy = per_call(lambda b=slow: b.build(r), max(20, args.count // 100))
        baseline = per_call(lambda b=plain, e=edition: email_message_baseline(b, r, e),
                            max(20, args.count // 10))
        print(f"{lang:4} {edition.html_size / 1024:7.1f} {size / 1024:7.1f} {fill:8.1f} "
              f"{build:8.1f} {with_dkim:8.1f} {with_dkimpy:8.1f} {baseline:12.1f}")
    if args.capture:
        rate = capture_rate(plain, args.capture, work / "maildir")
        print(f"capture: {args.capture} messages of {size / 1024:.1f} KB stored "
              f"at {rate:.0f} msg/s")


if __name__ == "__main__":
    main()
