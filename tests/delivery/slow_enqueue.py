"""`python -m tests.delivery.slow_enqueue -w WS send SLUG ...`: the CLI, with an enqueue in
small chunks that come 0.2 s apart, so that a test can stop the send between two of them
while its first messages go out."""

from __future__ import annotations

import time

from newsletter.cli.main import main
from newsletter.delivery import dispatch

CHUNK = 40
PAUSE = 0.2


def _slow_rest(*args, **kwargs):
    """dispatch._rest_of, with a pause after each chunk's commit."""
    *head, on_chunk = args

    def heard(added: int, done: bool) -> None:
        if on_chunk is not None:
            on_chunk(added, done)
        time.sleep(PAUSE)

    return _rest_of(*head, heard, **kwargs)


_rest_of = dispatch._rest_of
dispatch.FIRST_CHUNK = dispatch.CHUNK = CHUNK
dispatch._rest_of = _slow_rest

if __name__ == "__main__":
    main()
