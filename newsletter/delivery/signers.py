"""DKIM signer processes: the RSA signature of a signed send made on the machine's other cores.

The RSA signature is most of a signed message's CPU (~255 to ~750 µs with a 2048-bit key,
as fast as the VM's host is). `cryptography` before 47 holds the GIL while it signs, so
threads cannot overlap it with the event loop (dkim.py); from 47 on it lets the GIL go, but
signing threads beside the loop measured no faster than these processes and took more CPU a
message (each answer takes the GIL back from the loop; bench/RESULTS.md). A second sender
process overlaps it too, but costs its own start-up, claims and a second SQLite writer taking
turns with the first (~140 µs a message at 20,000, issue 16). A signer process needs none of
that: the sender canonicalizes and hashes as before (dkim.Frame) and sends the 32-byte digest
through a pipe; the signer (rsaproc.py, which imports only `cryptography`) answers with the
signature, and the sender's other connections go on meanwhile.

How it fits into the synchronous message build (message.py, unchanged): the builder's
DkimSigner gets a `RemoteKey` in place of its RSA key. Its `sign` sends the digest and returns
a blank signature of the right size; `finish` turns the built message into an awaitable
(`Pending`) that puts the real signature in place of the blank one (same length: an RSA
signature is as long as the modulus) once it arrives. pool.Connection awaits it before the
message goes out, so an unsigned message is never sent.

A signer that dies (killed, out of memory) is dropped: what it had been asked is signed in
this process, with a warning, and so is everything once none is left. So is a signer that
stays alive but stops answering (stopped, or starved): an RSA signature takes about a
millisecond, and a signer whose oldest request has waited HUNG_AFTER seconds is killed.
The signers end when `close` closes their pipes, and on their own if this process dies (their
stdin ends).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any

from newsletter.delivery.dkim import DkimSigner, fold_signature, pkcs1_sha256
from newsletter.delivery.rsaproc import HEAD

log = logging.getLogger(__name__)
_ACTIVE: list[Signers] = []  # the pool started in this process, if any (see active())
B_TAG = b";\r\n b="  # what precedes the signature in our DKIM-Signature field (dkim._tags)
MAX_WAITING = 1000  # requests one signer may owe before this process signs
HUNG_AFTER = 10.0  # seconds a signer may leave its oldest request unanswered before it is ended
WATCH_EVERY = 1.0  # seconds between looks at the signers' oldest requests


def active() -> Signers | None:
    """The signer processes of this process's send, if it started some."""
    return _ACTIVE[-1] if _ACTIVE else None


class _Signer:
    """One signer process, its two pipe ends and the requests it has not answered yet."""

    def __init__(self, pem: bytes) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from newsletter.delivery.rsaproc import main; main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.fd_in = self.proc.stdin.fileno()
        self.fd_out = self.proc.stdout.fileno()
        os.write(self.fd_in, HEAD.pack(len(pem)) + pem)  # a pipe holds 64 KiB: never blocks
        os.set_blocking(self.fd_in, False)
        os.set_blocking(self.fd_out, False)
        # request id -> (its future, its digest, the loop's time it was asked), oldest first
        self.waiting: dict[int, tuple[asyncio.Future[bytes], bytes, float]] = {}
        self.buffer = b""

    def close(self) -> None:
        """Close its stdin (it ends) and reap it; killed if it does not end in 5 s."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Signers:
    """The signer processes of one sender process, started ahead of its run (crew.Crew)."""

    def __init__(self, dkim: DkimSigner, count: int) -> None:
        self.key = dkim.rsa_key
        self.pem = dkim.private_key
        self.size = self.key.key_size // 8  # the length of every signature
        self.live: list[_Signer] = []
        self.ids = itertools.count()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.watch: asyncio.TimerHandle | None = None
        self.warned = False
        try:
            for _ in range(count):
                self.live.append(_Signer(dkim.private_key))
        except BaseException:
            self.close()
            raise
        _ACTIVE.append(self)

    @classmethod
    def start(cls, dkim: DkimSigner | None, count: int) -> Signers | None:
        """`count` signers for `dkim`, or None when it is not signed with OpenSSL's RSA."""
        if dkim is None or dkim.rsa_key is None or count < 1:
            return None
        return cls(dkim, count)

    def __enter__(self) -> Signers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def remote(self, dkim: DkimSigner) -> tuple[DkimSigner, Callable[[bytes], Any] | None]:
        """`dkim` with its RSA done by these processes, and what turns a message it signed into
        a `Pending` (RemoteKey.finish); `dkim` and None if dkimpy signs or its key is not the
        one the processes were given."""
        if dkim.rsa_key is None or dkim.private_key != self.pem:
            return dkim, None
        key = RemoteKey(self, dkim.rsa_key)
        return replace(dkim, rsa_key=key), key.finish

    def ask(self, digest: bytes) -> asyncio.Future[bytes]:
        """The signature of `digest`, from the signer with the fewest requests waiting."""
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            self._attach(loop)
        future: asyncio.Future[bytes] = loop.create_future()
        signer = min(self.live, key=lambda s: len(s.waiting), default=None)
        if signer is None or len(signer.waiting) >= MAX_WAITING or not self._hand(
                signer, digest, future):
            future.set_result(self.sign_here(digest))
        return future

    def _hand(self, signer: _Signer, digest: bytes, future: asyncio.Future[bytes]) -> bool:
        """Write the request to `signer`; False when it cannot take it (its pipe is full, or
        it died: then what it owed is signed here)."""
        number = next(self.ids) & 0xFFFFFFFF
        try:
            os.write(signer.fd_in, HEAD.pack(number) + digest)  # 36 bytes: all or nothing
        except BlockingIOError:
            return False
        except OSError:  # it died (EPIPE)
            self._lost(signer)
            return False
        assert self.loop is not None  # ask attached it
        signer.waiting[number] = (future, digest, self.loop.time())
        return True

    def sign_here(self, digest: bytes) -> bytes:
        return bytes(self.key.sign(digest, *pkcs1_sha256()))

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        for signer in self.live:
            loop.add_reader(signer.fd_out, self._readable, signer)
        self.watch = loop.call_later(WATCH_EVERY, self._look)

    def _look(self) -> None:
        """End a signer whose oldest request has waited HUNG_AFTER seconds (it answers in
        order, so that one is the first to answer); look again in WATCH_EVERY seconds."""
        assert self.loop is not None
        now = self.loop.time()
        for signer in list(self.live):
            if signer.waiting:  # answers that came while this process itself was stopped
                self._readable(signer)
            oldest = next(iter(signer.waiting.values()), None)
            if oldest is not None and now - oldest[2] >= HUNG_AFTER:
                signer.proc.kill()
                self._lost(signer, f"did not answer for {HUNG_AFTER:g} s and was ended")
        self.watch = self.loop.call_later(WATCH_EVERY, self._look) if self.live else None

    def _readable(self, signer: _Signer) -> None:
        try:
            data = os.read(signer.fd_out, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost(signer)
            return
        buffer = signer.buffer + data
        step = HEAD.size + self.size
        whole = len(buffer) - len(buffer) % step
        for i in range(0, whole, step):
            future, _digest, _asked = signer.waiting.pop(HEAD.unpack_from(buffer, i)[0])
            if not future.done():  # its connection may have been cancelled meanwhile
                future.set_result(buffer[i + HEAD.size:i + step])
        signer.buffer = buffer[whole:]

    def _lost(self, signer: _Signer, why: str = "") -> None:
        """A signer ended mid-run: sign what it owed here, and send it nothing more."""
        if signer not in self.live:
            return
        self.live.remove(signer)
        if self.loop is not None and not self.loop.is_closed():
            self.loop.remove_reader(signer.fd_out)
        if not self.warned:
            self.warned = True
            log.warning("a DKIM signer process %s; signing in the sender process instead",
                        why or f"ended (exit status {signer.proc.poll()})")
        for future, digest, _asked in signer.waiting.values():
            if not future.done():
                future.set_result(self.sign_here(digest))
        signer.waiting.clear()
        signer.close()

    def close(self) -> None:
        """End the signer processes and wait for them (each ends when its stdin closes)."""
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None
        if self.loop is not None and not self.loop.is_closed():
            for signer in self.live:
                self.loop.remove_reader(signer.fd_out)
        live, self.live = self.live, []
        for signer in live:
            signer.close()


class RemoteKey:
    """Stands in for the RSA key of a DkimSigner: `sign` asks a signer process and returns a
    blank signature; `finish` makes the built message an awaitable with the real one."""

    def __init__(self, signers: Signers, key: Any) -> None:
        self.signers = signers
        self.key = key
        self.key_size = key.key_size
        self.blank = bytes(signers.size)
        self.asked: asyncio.Future[bytes] | None = None

    def public_key(self) -> Any:
        return self.key.public_key()

    def sign(self, digest: bytes, *_args: Any) -> bytes:
        self.asked = self.signers.ask(digest)
        return self.blank

    def finish(self, message: bytes) -> bytes | Pending:
        """The message as built if nothing was asked while building it (dkimpy signed a
        message that is not strictly CRLF), else a `Pending` for it."""
        asked, self.asked = self.asked, None
        return message if asked is None else Pending(message, asked, self.blank)


class Pending:
    """A built message whose DKIM signature is on its way; awaiting it gives the message."""

    __slots__ = ("asked", "blank", "message")

    def __init__(self, message: bytes, asked: asyncio.Future[bytes], blank: bytes) -> None:
        self.message, self.asked, self.blank = message, asked, blank

    def __await__(self) -> Generator[Any, None, bytes]:
        signature = yield from self.asked.__await__()
        return self.signed(signature)

    def signed(self, signature: bytes) -> bytes:
        """The message with `signature` in place of the blank one (the same length)."""
        message = self.message
        start = message.index(B_TAG) + len(B_TAG)  # the first field is the DKIM-Signature
        real = fold_signature(base64.b64encode(signature))
        return type(message)(b"".join((message[:start], real, message[start + len(real):])))
