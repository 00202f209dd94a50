"""A DKIM signer process (signers.py starts it): RSA over SHA-256 digests, nothing else.

It imports only `cryptography` and reads its key from the pipe on stdin, then answers each
request (4-byte id, 32-byte digest) on stdout with the id and the PKCS #1 v1.5 signature. It
ends when stdin ends: the sender closed it at the end of its run, or died, so a signer never
outlives its sender. It runs in its own session (no terminal Ctrl-C reaches it: the sender
decides when it ends).
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
from typing import Any

HEAD = struct.Struct(">I")  # the request id
DIGEST = 32
REQUEST = HEAD.size + DIGEST


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def serve(fd_in: int, fd_out: int) -> None:
    """Load the key sent first (length, PEM), then sign every request until stdin ends."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, utils

    pem = _read_exactly(fd_in, HEAD.unpack(_read_exactly(fd_in, HEAD.size))[0])
    key: Any = serialization.load_pem_private_key(pem, password=None)  # RSA: dkim.py checked
    args = (padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    sign = key.sign
    pending = b""
    while True:
        data = os.read(fd_in, 65536)
        if not data:
            return
        pending += data
        whole = len(pending) - len(pending) % REQUEST
        # Several requests read at once are answered in one write: fewer wake-ups for both.
        _write_all(fd_out, b"".join(
            pending[i:i + HEAD.size] + sign(pending[i + HEAD.size:i + REQUEST], *args)
            for i in range(0, whole, REQUEST)))
        pending = pending[whole:]


def main() -> None:
    """Entry point (python -c); a sender gone mid-answer ends it quietly. SIGINT and SIGTERM
    sent to everything (systemd stops a unit's whole group) are the sender's to act on: it
    pauses, and its signers answer what it still asks until it closes their stdin."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(EOFError, BrokenPipeError):
        serve(0, 1)


if __name__ == "__main__":
    main()
