"""What one report may cost before it is recorded as unreadable: size, nesting, parse time.

A report is anything a stranger can send to the bounce domain, so reading it is bounded:

- size: at most `MAX_REPORT` bytes in all (the SMTP receiver answers 552 beyond it, a mailbox
  file beyond it is not parsed). The receiver streams a report to a spool file instead of
  holding it in memory, and only its first `PARSE_LIMIT` bytes are parsed: the report's
  headers, its human-readable part, the DSN fields and the returned headers all come first
  (RFC 6522 §3), and what follows is the returned newsletter's body, which we never read;
- nesting: at most `MAX_CONTAINERS` multipart/message parts in that head and at most
  `MAX_DEPTH` levels (the standard parser recurses once per level);
- time and memory: parsing runs in one child process (`ParseWorker`) that is killed after
  `PARSE_SECONDS` or when it exceeds `WORKER_MEMORY`, so a report that would crash the parser
  or hog the CPU costs only that child, which is started again for the next report.

Any of these raises `ReportUnreadable`, whose message says why in a few words.
"""

from __future__ import annotations

import atexit
import email
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from multiprocessing.connection import Connection
from typing import IO, Any

from newsletter.errors import NewsletterError

MAX_REPORT = 25 * 1024 * 1024  # a bounce carries at most the original newsletter back
PARSE_LIMIT = 256 * 1024  # the part of a report that is parsed
MAX_CONTAINERS = 50  # multipart/* and message/* parts in that head
MAX_DEPTH = 12  # a real report is 3 to 5 levels deep
PARSE_SECONDS = 5.0
WORKER_MEMORY = 1024 * 1024 * 1024  # address space of the parse worker
SPOOL_IN_MEMORY = 64 * 1024  # a report's bytes beyond this go to a temporary file

_CONTAINER = re.compile(rb"(?im)^content-type:[ \t]*(?:\r?\n[ \t]+)?(?:multipart|message)/")


class ParserUnavailable(NewsletterError):
    """The parse worker cannot be started (a report is then not recorded, but retried)."""


class ReportUnreadable(Exception):  # noqa: N818 - a verdict about a report, not a bug
    """The report is too big, too deep, too slow or too broken to read."""


@dataclass
class Raw:
    """One report as received: its head (what is parsed), size, digest and, if kept, a spool."""

    head: bytes
    size: int
    digest: str  # sha256 of the whole report
    spool: IO[bytes] | None = None  # the whole report, for keeping it in a Maildir

    @classmethod
    def of(cls, data: bytes) -> Raw:
        """A report already in memory (a mailbox file, a test)."""
        return cls(data[:PARSE_LIMIT], len(data), hashlib.sha256(data).hexdigest())

    def whole(self) -> bytes | IO[bytes]:
        """The whole report: bytes when it fitted the head, else the rewound spool."""
        if self.spool is None:
            return self.head
        self.spool.seek(0)
        return self.spool


@dataclass
class RawSink:
    """Collects a report line by line (SMTP DATA) without holding it all in memory."""

    limit: int = MAX_REPORT
    size: int = 0
    head: bytearray = field(default_factory=bytearray)
    _hash: Any = field(default_factory=hashlib.sha256)
    _spool: Any = None

    def write(self, chunk: bytes) -> None:
        """Add bytes; past `limit` they are only counted (the reply will be 552)."""
        self.size += len(chunk)
        if self.size > self.limit:
            self.close()
            return
        self._hash.update(chunk)
        if len(self.head) < PARSE_LIMIT:
            self.head += chunk[: PARSE_LIMIT - len(self.head)]
        if self._spool is None:
            # closed by close(), or by whoever takes it over in raw()
            self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        self._spool.write(chunk)

    @property
    def too_big(self) -> bool:
        return self.size > self.limit

    def raw(self) -> Raw:
        """The collected report."""
        spool = None
        if self.size > PARSE_LIMIT:
            spool, self._spool = self._spool, None
        self.close()
        return Raw(bytes(self.head), self.size, self._hash.hexdigest(), spool)

    def close(self) -> None:
        """Drop the spool (its temporary file, if any)."""
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()


def check_structure(head: bytes) -> None:
    """ReportUnreadable when the head has too many MIME containers to parse safely."""
    containers = len(_CONTAINER.findall(head))
    if containers > MAX_CONTAINERS:
        raise ReportUnreadable(f"{containers} nested MIME parts (limit {MAX_CONTAINERS})")


def mime_depth(msg: Message) -> int:
    """How many levels of parts a parsed message has (1 for a single part)."""
    deepest, stack = 0, [(msg, 1)]
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        payload = part.get_payload() if part.is_multipart() else None
        for sub in payload if isinstance(payload, list) else ():
            if isinstance(sub, Message):
                stack.append((sub, depth + 1))
    return deepest


def parse_message(head: bytes) -> Message:
    """The head as a Message; ReportUnreadable when it is nested too deep."""
    check_structure(head)
    msg = email.message_from_bytes(head)
    depth = mime_depth(msg)
    if depth > MAX_DEPTH:
        raise ReportUnreadable(f"MIME parts nested {depth} levels deep (limit {MAX_DEPTH})")
    return msg


def _serve(requests: Connection, answers: Connection) -> None:
    """The worker's loop: (head, keys, envelope_to) in, (True, report) or (False, why) out."""
    import resource

    from newsletter.bounces.report import parse_report
    from newsletter.tokens import Signer

    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))
    signers: dict[tuple[str, ...], Signer] = {}
    while True:
        try:
            head, keys, envelope_to = requests.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        signer = signers.setdefault(keys, Signer(keys[0], keys[1:]))
        try:
            answer: tuple[bool, Any] = (True, parse_report(head, signer, envelope_to))
        except ReportUnreadable as exc:
            answer = (False, str(exc))
        except RecursionError:
            answer = (False, "MIME parts nested too deep")
        except MemoryError:
            answer = (False, f"needs more than {WORKER_MEMORY >> 20} MB to read")
        except Exception as exc:  # any parser failure on hostile input: the report is unreadable
            answer = (False, f"the parser failed: {type(exc).__name__}")
        answers.send(answer)


class ParseWorker:
    """One child process that parses reports, restarted after a timeout or a crash.

    A plain subprocess (`python -m newsletter.bounces.intake`) talking over its stdin and
    stdout: no fork of a threaded receiver, and no re-import of the caller's main module.
    """

    def __init__(self, timeout: float = PARSE_SECONDS) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None

    def _start(self) -> tuple[Connection, Connection]:
        if self._process is None or self._process.poll() is not None:
            self._stop()
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "newsletter.bounces.intake"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
            except OSError as exc:  # the machine's fault, not the report's: try again later
                raise ParserUnavailable(f"cannot start the bounce parser: "
                                        f"{exc.strerror or exc}") from None
            assert self._process.stdin is not None and self._process.stdout is not None
            self._send = Connection(os.dup(self._process.stdin.fileno()), readable=False)
            self._recv = Connection(os.dup(self._process.stdout.fileno()), writable=False)
            self._process.stdin.close()
            self._process.stdout.close()
        assert self._send is not None and self._recv is not None
        return self._send, self._recv

    def parse(self, head: bytes, keys: Sequence[str], envelope_to: Sequence[str]) -> Any:
        """The BounceReport for a report's head; ReportUnreadable with the reason if none."""
        with self._lock:
            send, recv = self._start()
            try:
                send.send((head, tuple(keys), list(envelope_to)))
                if not recv.poll(self.timeout):
                    self._stop()
                    raise ReportUnreadable(f"took more than {self.timeout:g} s to read")
                ok, value = recv.recv()
            except (EOFError, OSError):  # the child died (killed for its memory, crashed)
                self._stop()
                raise ReportUnreadable("the parser crashed on it") from None
        if not ok:
            raise ReportUnreadable(value)
        return value

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def _stop(self) -> None:
        process, self._process = self._process, None
        for conn in (self._send, self._recv):
            if conn is not None:
                conn.close()
        self._send = self._recv = None
        if process is not None:
            process.kill()
            process.wait(5)

    def close(self) -> None:
        """End the child process."""
        with self._lock:
            self._stop()


_shared: ParseWorker | None = None
_shared_lock = threading.Lock()


def shared_worker() -> ParseWorker:
    """The process's parse worker (one child serves every receiver and mailbox run)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ParseWorker()
            atexit.register(_shared.close)
        return _shared


if __name__ == "__main__":
    # Run the loop from the imported module, so its ReportUnreadable is the one report.py raises.
    from newsletter.bounces.intake import _serve as serve

    serve(Connection(os.dup(0), writable=False), Connection(os.dup(1), readable=False))
