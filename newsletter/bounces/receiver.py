"""Take bounces in: an SMTP receiver for the VERP domain, or messages already in a mailbox.

The receiver is what the bounce domain's MX points at. It accepts mail only for the bounce
addresses (`bounces@domain` and `bounces+TOKEN@domain`, as set in [bounces]) and for
`postmaster@domain` and `abuse@domain`, which every mail domain must receive (RFC 5321
§4.5.1, RFC 2142): those are kept in a Maildir for a person to read ([bounces]
postmaster_maildir) and never acted on. Any other recipient gets 550, so it never relays
and never collects spam for other addresses.
A token that fails its HMAC is still accepted at RCPT (some relays change the case of an
address, and the returned headers may still name the delivery): such a report is recorded as
unmatched, never applied to anybody.

Each message is parsed and the policy applied before the reply to DATA, in one worker thread
so that reports are applied one at a time. DATA is streamed to a spool file, never held in
memory, and only its head is parsed, in a child process with a time limit (intake.py). The
reply is 250 for anything that was recorded. A report too big, too deep or too broken to read
is recorded once as unreadable and answered 554, and one over the size limit 552: both are
permanent, so the sending server stops offering it. Only when the report could not be recorded
(the database is down) is it 451, so the sending server keeps it and tries again later.

Operators whose bounces land in a mailbox instead run `process_paths` on a Maildir folder, an
mbox file or single .eml files, as often as they like: processing is idempotent.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mailbox
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Engine

from newsletter.bounces.intake import (
    MAX_REPORT,
    PARSE_LIMIT,
    ParseWorker,
    Raw,
    RawSink,
    ReportUnreadable,
    shared_worker,
)
from newsletter.bounces.policy import BouncePolicy, Outcome, apply_report, report_key
from newsletter.bounces.report import BounceReport
from newsletter.config import ConfigError, Settings
from newsletter.delivery.capture import ThreadedSmtpServer
from newsletter.delivery.verp import verp_parts
from newsletter.errors import NewsletterError
from newsletter.keyring import load_keyring
from newsletter.tokens import Signer

log = logging.getLogger(__name__)


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
    signer_keys: tuple[str, ...] = ()  # current and old secret keys, for the parse worker
    postmaster_path: Path | None = None  # Maildir for postmaster@ and abuse@ mail
    worker: ParseWorker = field(default_factory=shared_worker)

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> Processor:
        keys = load_keyring(settings, engine)
        # The parse worker makes its own signer from the same keys link_signer uses.
        secrets = (str(settings.secret_key), *settings.newsletter.old_secret_keys)
        prefix, suffix = verp_parts(settings)
        keep = settings.bounces.keep_unmatched
        box = None
        if keep:
            try:
                box = mailbox.Maildir(settings.path(keep), create=True)
            except OSError as exc:
                raise ConfigError(f"[bounces] keep_unmatched: cannot create Maildir {keep}: "
                                  f"{exc.strerror or exc}") from None
        return cls(engine=engine, signer=keys.signer, address_key=keys.address_key,
                   policy=BouncePolicy.from_settings(settings), prefix=prefix.lower(),
                   suffix=suffix.lower(), keep_unmatched=box, signer_keys=secrets,
                   postmaster_path=settings.path(settings.bounces.postmaster_maildir))

    def is_role(self, address: str) -> bool:
        """True for postmaster@ and abuse@ the bounce domain (any case)."""
        text = (address or "").strip().strip("<>").lower()
        return text in (f"postmaster{self.suffix}", f"abuse{self.suffix}")

    def keep_for_postmaster(self, raw: Raw, envelope_to: Sequence[str]) -> Outcome:
        """Store a message to postmaster@ or abuse@ for a person; nothing else is done."""
        if self.postmaster_path is None:
            raise BounceError("[bounces] postmaster_maildir is not set")
        try:
            self.postmaster_path.parent.mkdir(parents=True, exist_ok=True)
            box = mailbox.Maildir(self.postmaster_path, create=True)
        except OSError as exc:
            raise BounceError(f"cannot create Maildir {self.postmaster_path}: "
                              f"{exc.strerror or exc}") from None
        self._keep(raw, envelope_to, box)
        roles = ", ".join(sorted({a.lower() for a in envelope_to if self.is_role(a)}))
        return Outcome(kind="postmaster", action="kept", note=f"for {roles}")

    def accepts(self, address: str) -> bool:
        """True for the bounce mailbox itself, any VERP address under it, postmaster@, abuse@."""
        if self.is_role(address):
            return True
        text = (address or "").strip().strip("<>")
        lowered = text.lower()
        if not lowered.endswith(self.suffix):
            return False
        local = text[: len(text) - len(self.suffix)]
        return local.lower() == self.prefix[:-1] or (
            local.lower().startswith(self.prefix) and len(local) > len(self.prefix))

    def process(self, data: bytes | Raw, envelope_to: Sequence[str] = (),
                now: datetime | None = None) -> Outcome:
        """Parse one message, apply the policy, keep the raw message if it matched nobody."""
        raw = data if isinstance(data, Raw) else Raw.of(data)
        report = self.read(raw, envelope_to)
        outcome = apply_report(self.engine, report, key=report_key(raw.head, raw.digest),
                               address_key=self.address_key, policy=self.policy, now=now)
        if outcome.action in ("unmatched", "unreadable") and self.keep_unmatched is not None:
            self._keep(raw, envelope_to, self.keep_unmatched)
        return outcome

    def read(self, raw: Raw, envelope_to: Sequence[str]) -> BounceReport:
        """The parsed report, or an "unreadable" one saying why it could not be read."""
        try:
            if raw.size > MAX_REPORT:
                raise ReportUnreadable(f"{raw.size:,} bytes (limit {MAX_REPORT:,})")
            report: BounceReport = self.worker.parse(raw.head, self.signer_keys, envelope_to)
            return report
        except ReportUnreadable as exc:
            return BounceReport(kind="unreadable", delivery_id=None, diagnostic=str(exc),
                                source="none")

    def _keep(self, raw: Raw, envelope_to: Sequence[str], box: mailbox.Maildir) -> None:
        trace = "".join(f"X-Bounce-Envelope-To: {a}\r\n" for a in envelope_to)
        whole = raw.whole()
        body = whole if isinstance(whole, bytes) else whole.read(MAX_REPORT)
        box.add(trace.encode("utf-8", "replace") + body)


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
        raw = getattr(envelope, "raw", None) or Raw.of(bytes(envelope.original_content or b""))
        loop = asyncio.get_running_loop()
        rcpts = list(envelope.rcpt_tos)
        reports = [a for a in rcpts if not self.processor.is_role(a)]
        try:
            if len(reports) < len(rcpts):
                kept = await loop.run_in_executor(
                    self.executor, self.processor.keep_for_postmaster, raw, rcpts)
                if self.on_outcome is not None:
                    self.on_outcome(kept)
                if not reports:
                    return "250 2.0.0 OK: kept for the postmaster"
            outcome = await loop.run_in_executor(
                self.executor, self.processor.process, raw, reports)
        except Exception as exc:  # not recorded (database down...): the sender must retry
            log.exception("could not record a bounce report")
            if self.on_error is not None:
                self.on_error(f"could not record a report, asked the sender to retry: {exc}")
            return "451 4.3.0 cannot record the report now, try again later"
        self.count += 1
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        if outcome.kind == "unreadable":
            return f"554 5.6.0 report cannot be read: {outcome.note}"
        return "250 2.0.0 OK: report received"


class StreamingSMTP(SMTP):
    """aiosmtpd's SMTP whose DATA goes to a spool (RawSink) instead of a list of lines.

    aiosmtpd keeps every line of a message as its own object until the end of DATA: about
    twice the message in memory per session, for every session at once.
    """

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if self.envelope is None or not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        sink = RawSink(limit=self.data_size_limit or MAX_REPORT)
        try:
            await self._receive(sink)
            if sink.too_big:
                self._set_post_data_state()
                await self.push(f"552 5.3.4 report too big (limit {sink.limit:,} bytes)")
                return
            self.envelope.raw = sink.raw()  # type: ignore[attr-defined]
            status = await self._call_handler_hook("DATA")
        finally:
            sink.close()
            spool = getattr(self.envelope, "raw", None)
            if spool is not None and spool.spool is not None:
                spool.spool.close()
        self._set_post_data_state()
        await self.push(status)

    async def _receive(self, sink: RawSink) -> None:
        """Read DATA up to the lone dot, undoing dot-stuffing (RFC 5321 §4.5.2)."""
        at_line_start = True
        while self.transport is not None:
            try:
                chunk = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:  # a line longer than the reader's buffer
                chunk = await self._reader.read(exc.consumed)
            if at_line_start:
                if chunk == b".\r\n":
                    return
                if chunk.startswith(b"."):
                    chunk = chunk[1:]
            sink.write(chunk)
            at_line_start = chunk.endswith(b"\r\n")


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
                           size_limit=MAX_REPORT, error=BounceError, smtp_class=StreamingSMTP)

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


def read_file(path: Path) -> Raw:
    """One message file: whole when it fits the size limit, else only its head (unreadable)."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_REPORT:
            head = handle.read(PARSE_LIMIT)
            return Raw(head, size, hashlib.sha256(head + b"%d" % size).hexdigest())
        sink = RawSink()
        while chunk := handle.read(1 << 20):
            sink.write(chunk)
    return sink.raw()


def read_messages(path: Path) -> Iterator[tuple[str, Raw]]:
    """(name, message) of each message in a Maildir, an mbox file or one .eml file."""
    try:
        if path.is_dir():
            for sub in ("new", "cur"):
                folder = path / sub
                files = sorted(folder.iterdir()) if folder.is_dir() else []
                for file in files:
                    if file.is_file() and not file.name.startswith("."):
                        yield str(file), read_file(file)
            return
        with path.open("rb") as handle:
            is_mbox = handle.read(5) == b"From "
        if not is_mbox:
            yield str(path), read_file(path)
            return
        box = mailbox.mbox(path, create=False)
        try:
            for number, key in enumerate(box.iterkeys(), 1):
                yield f"{path}#{number}", Raw.of(box.get_bytes(key))
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
