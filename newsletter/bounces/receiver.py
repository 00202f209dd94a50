"""Take bounces in: an SMTP receiver for the VERP domain, or messages already in a mailbox.

The receiver is what the bounce domain's MX points at. It accepts mail only for the bounce
addresses (`bounces@domain` and `bounces+TOKEN@domain`, as set in [bounces]) and answers
550 to any other recipient, so it never relays and never collects spam for other addresses.
A token that fails its HMAC is still accepted at RCPT (some relays change the case of an
address, and the returned headers may still name the delivery): such a report is recorded as
unmatched, never applied to anybody.

Each message is parsed and the policy applied before the reply to DATA, in one worker thread
so that reports are applied one at a time. The reply is 250 for anything that was recorded,
unparseable reports included. Only when the report could not be recorded (the database is
down) is it 451, so the sending server keeps it and tries again later: no report is lost.

Operators whose bounces land in a mailbox instead run `process_paths` on a Maildir folder, an
mbox file or single .eml files, as often as they like: processing is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Engine

from newsletter.bounces.policy import BouncePolicy, Outcome, apply_report, report_key
from newsletter.bounces.report import parse_bounce
from newsletter.config import ConfigError, Settings
from newsletter.delivery.capture import ThreadedSmtpServer
from newsletter.delivery.verp import verp_parts
from newsletter.errors import NewsletterError
from newsletter.keyring import load_keyring
from newsletter.tokens import Signer

log = logging.getLogger(__name__)
MAX_REPORT = 25 * 1024 * 1024  # a bounce carries at most the original newsletter back


class BounceError(NewsletterError):
    """Bounces cannot be received or read (port taken, missing or unreadable mailbox)."""


@dataclass
class Processor:
    """Parses a report and applies the policy; shared by the SMTP receiver and the mailbox."""

    engine: Engine
    signer: Signer
    address_key: str  # hashes addresses for the suppression list; never rotates
    policy: BouncePolicy
    prefix: str  # `bounces+`
    suffix: str  # `@bounces.example.org`
    keep_unmatched: mailbox.Maildir | None = None

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> Processor:
        keys = load_keyring(settings, engine)
        prefix, suffix = verp_parts(settings)
        keep = settings["bounces"]["keep_unmatched"]
        box = None
        if keep:
            try:
                box = mailbox.Maildir(settings.path(keep), create=True)
            except OSError as exc:
                raise ConfigError(f"[bounces] keep_unmatched: cannot create Maildir {keep}: "
                                  f"{exc.strerror or exc}") from None
        return cls(engine=engine, signer=keys.signer, address_key=keys.address_key,
                   policy=BouncePolicy.from_settings(settings), prefix=prefix.lower(),
                   suffix=suffix.lower(), keep_unmatched=box)

    def accepts(self, address: str) -> bool:
        """True for the bounce mailbox itself and any VERP address under it."""
        text = (address or "").strip().strip("<>")
        lowered = text.lower()
        if not lowered.endswith(self.suffix):
            return False
        local = text[: len(text) - len(self.suffix)]
        return local.lower() == self.prefix[:-1] or (
            local.lower().startswith(self.prefix) and len(local) > len(self.prefix))

    def process(self, data: bytes, envelope_to: Sequence[str] = (),
                now: datetime | None = None) -> Outcome:
        """Parse one message, apply the policy, keep the raw message if it matched nobody."""
        report = parse_bounce(data, self.signer, envelope_to)
        outcome = apply_report(self.engine, report, key=report_key(data),
                               address_key=self.address_key, policy=self.policy, now=now)
        if outcome.action == "unmatched" and self.keep_unmatched is not None:
            trace = "".join(f"X-Bounce-Envelope-To: {a}\r\n" for a in envelope_to)
            self.keep_unmatched.add(trace.encode("utf-8", "replace") + data)
        return outcome


class BounceHandler:
    """aiosmtpd hooks: only bounce recipients, then one report per message."""

    def __init__(self, processor: Processor,
                 on_outcome: Callable[[Outcome], None] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.processor = processor
        self.on_outcome = on_outcome
        self.on_error = on_error
        self.count = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bounces")

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if not self.processor.accepts(address):
            return f"550 5.1.1 <{address}>: no such bounce address here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = bytes(envelope.original_content or b"")
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(
                self.executor, self.processor.process, data, list(envelope.rcpt_tos))
        except Exception as exc:  # not recorded (database down...): the sender must retry
            log.exception("could not record a bounce report")
            if self.on_error is not None:
                self.on_error(f"could not record a report, asked the sender to retry: {exc}")
            return "451 4.3.0 cannot record the report now, try again later"
        self.count += 1
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return "250 2.0.0 OK: report received"


class BounceServer(ThreadedSmtpServer):
    """The receiver in a background thread."""

    def __init__(self, processor: Processor, host: str = "127.0.0.1", port: int = 2525,
                 on_outcome: Callable[[Outcome], None] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        super().__init__(host, port)
        self.handler = BounceHandler(processor, on_outcome, on_error)

    @property
    def count(self) -> int:
        """Reports recorded since start."""
        return self.handler.count

    def start(self) -> Self:
        """Listen; BounceError when the address cannot be used."""
        if not 0 <= self.port <= 65535:
            raise BounceError(f"port {self.port} is not between 1 and 65535")
        return self.listen(self.handler, server_hostname="bounces.newsletter.local",
                           size_limit=MAX_REPORT, error=BounceError)

    def stop(self) -> bool:
        """Stop listening, finish the report in hand; idempotent."""
        stopped = super().stop()
        if stopped:
            self.handler.executor.shutdown(wait=True)
        return stopped


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def check_paths(paths: Iterable[Path]) -> list[Path]:
    """Every path must be a Maildir folder or a readable file; BounceError names the first not."""
    found = []
    for path in paths:
        if path.is_dir() and not _is_maildir(path):
            raise BounceError(f"{path}: a folder, but not a Maildir (no cur/ or new/ inside)")
        if not path.exists():
            raise BounceError(f"{path}: no such file or folder")
        found.append(path)
    return found


def read_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, raw bytes) of each message in a Maildir, an mbox file or one .eml file."""
    try:
        if path.is_dir():
            for sub in ("new", "cur"):
                folder = path / sub
                files = sorted(folder.iterdir()) if folder.is_dir() else []
                for file in files:
                    if file.is_file() and not file.name.startswith("."):
                        yield str(file), file.read_bytes()
            return
        with path.open("rb") as handle:
            is_mbox = handle.read(5) == b"From "
        if not is_mbox:
            yield str(path), path.read_bytes()
            return
        box = mailbox.mbox(path, create=False)
        try:
            for number, key in enumerate(box.iterkeys(), 1):
                yield f"{path}#{number}", box.get_bytes(key)
        finally:
            box.close()
    except OSError as exc:
        raise BounceError(f"{path}: cannot read: {exc.strerror or exc}") from None


def process_paths(processor: Processor, paths: Sequence[Path]) -> Iterator[tuple[str, Outcome]]:
    """Process every message found under the paths (all checked before the first one)."""
    for path in check_paths(paths):
        for name, data in read_messages(path):
            yield name, processor.process(data)


def summarize(outcomes: Iterable[Outcome]) -> dict[str, Any]:
    """Counts per kind and per action, for `bounces process`."""
    kinds: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    for outcome in outcomes:
        kinds[outcome.kind] += 1
        actions[outcome.action] += 1
    return {"reports": sum(kinds.values()), "by_kind": dict(sorted(kinds.items())),
            "by_action": dict(sorted(actions.items()))}
