"""One archive build at a time in a folder: an exclusive lock on the folder itself.

Two `newsletter worker --build-archive` processes sharing an `[archive] out` folder may finish
issues at the same moment; both builds would write into the folder at once. Each takes
`fcntl.flock` on the folder first, without waiting: the one that does not get it skips its
build and tries again at its next pass, so the last issue sent is always in the site. The lock
is on the folder, not on a file in it, so the site holds nothing of it; the kernel drops it when
its holder exits, even killed. flock holds between processes of one host; hosts sharing the
folder over a network file system need one that passes flock on.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def building(out: Path, wait: bool = False) -> Iterator[bool]:
    """Hold the folder's build lock for the block: True; False when another process holds
    it (build nothing then). With `wait`, block until the other build is done instead:
    `newsletter archive build` by hand waits for a worker's build and never gets False."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the folder releases the lock
