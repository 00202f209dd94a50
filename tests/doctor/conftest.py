"""Real servers for `newsletter doctor`: a DNS server on loopback, an HTTP site, the SMTP relay.

`dns_server(records)` starts a UDP DNS server (dnspython's message API) answering only the
given records, authoritatively: a name it does not know is NXDOMAIN, a known name without the
asked type is an empty answer. `zone(domain, ...)` writes the records of a sending domain set
up right; each keyword spoils one part. `web_site()` is a stand-in for `newsletter serve` plus
the published archive, with switches to break it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from tests.conftest import require_module
from tests.delivery.conftest import (  # noqa: F401 - fixtures
    FaultySMTPServer,
    smtp_server,
    smtp_server_factory,
    unused_port_fixture,
)

RELAY_NAME = "test.smtp.local"  # what the test SMTP server calls itself in its greeting
Record = tuple[str, str, str]


def txt(value: str) -> str:
    """A TXT value in zone syntax, cut into 255-octet strings as DNS requires."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


class DnsServer:
    """An authoritative DNS server on 127.0.0.1 (UDP) for the given records."""

    def __init__(self, records: list[Record]) -> None:
        self.rrsets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
        for name, kind, data in records:
            owner = dns.name.from_text(name)
            rdtype = dns.rdatatype.from_text(kind)
            rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, data)
            key = (owner, rdtype)
            self.rrsets.setdefault(key, dns.rrset.RRset(owner, dns.rdataclass.IN, rdtype))
            self.rrsets[key].add(rdata, ttl=60)
        self.names = {owner for owner, _ in self.rrsets}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.queries: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA
            question = query.question[0]
            self.queries.append(f"{question.name} {dns.rdatatype.to_text(question.rdtype)}")
            found = self.rrsets.get((question.name, question.rdtype))
            if found is not None:
                reply.answer.append(found)
            elif question.name not in self.names:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(max_size=65535), peer)

    def stop(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture
def dns_server() -> Iterator[Callable[[list[Record]], DnsServer]]:
    """Start DNS servers for given records; all stop at teardown."""
    started: list[DnsServer] = []

    def start(records: list[Record]) -> DnsServer:
        server = DnsServer(records)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@dataclass(frozen=True)
class DkimKeys:
    """The configured key (PEM file) and its published record, plus a stranger's record."""

    path: Path
    record: str
    other_record: str


def _record_for(pem: bytes) -> str:
    from newsletter.delivery.dkim import DkimSigner, dns_record

    signer = DkimSigner(domain=b"x", selector=b"x", private_key=pem)
    return dns_record(signer)[1]


@pytest.fixture(scope="session")
def dkim_keys(tmp_path_factory: pytest.TempPathFactory) -> DkimKeys:
    """A 2048-bit key the doctor is configured with, and another one that does not match."""
    require_module("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pems = [rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()) for _ in range(2)]
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    path.write_bytes(pems[0])
    return DkimKeys(path, _record_for(pems[0]), _record_for(pems[1]))


def zone(domain: str, keys: DkimKeys, *, spf: str | None = "v=spf1 include:_spf.{d} -all",
         bounce_spf: str | None = "v=spf1 mx -all", dkim: str | None = "",
         dmarc: str | None = "v=DMARC1; p=quarantine; rua=mailto:dmarc@{d}",
         mx: bool = True, ptr: str | None = RELAY_NAME) -> list[Record]:
    """Records of `domain` set up right for a relay on 127.0.0.1; None leaves a record out.

    SPF goes through an include; the bounce domain's SPF through its MX (both resolve to
    127.0.0.1); DKIM selector "nl"; the bounce domain is bounces.<domain>.
    """
    records: list[Record] = [(f"_spf.{domain}.", "TXT", txt("v=spf1 ip4:127.0.0.1 ~all")),
                             (f"mx.{domain}.", "A", "127.0.0.1"),
                             (f"{RELAY_NAME}.", "A", "127.0.0.1")]
    if spf is not None:
        records.append((f"{domain}.", "TXT", txt(spf.format(d=domain))))
    if bounce_spf is not None:
        records.append((f"bounces.{domain}.", "TXT", txt(bounce_spf.format(d=domain))))
    if dkim is not None:
        records.append((f"nl._domainkey.{domain}.", "TXT", txt(dkim or keys.record)))
    if dmarc is not None:
        records.append((f"_dmarc.{domain}.", "TXT", txt(dmarc.format(d=domain))))
    if mx:
        records.append((f"bounces.{domain}.", "MX", f"10 mx.{domain}."))
    if ptr is not None:
        records.append(("1.0.0.127.in-addr.arpa.", "PTR", f"{ptr}."))
    return records


@dataclass
class WebSite:
    """Stand-in for the web app and the archive behind base_url; flip the switches to break it."""

    healthy: bool = True
    archive: bool = True
    requests: list[str] = field(default_factory=list)
    server: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def status(self, path: str) -> tuple[int, dict[str, str]]:
        if path == "/":
            return 303, {"Location": "/manage"}  # what the real app's home does
        if path == "/healthz":
            return (200 if self.healthy else 503), {}
        if path.startswith("/unsubscribe/"):
            return 400, {}  # the real app's answer to a token it did not sign
        if path == "/archive/en/" and self.archive:
            return 200, {}
        return 404, {}


@pytest.fixture
def web_site() -> Iterator[WebSite]:
    """A real HTTP server on loopback answering like `newsletter serve` and the archive."""
    site = WebSite()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            site.requests.append(f"{self.command} {self.path}")
            code, headers = site.status(self.path)
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = _answer

        def log_message(self, *args: Any) -> None:
            pass

    site.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    yield site
    site.server.shutdown()
    site.server.server_close()
