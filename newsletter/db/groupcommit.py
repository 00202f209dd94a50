"""Group commit for the web app's writes: many requests' rows in one transaction.

The web app's one-click unsubscribes arrive many at a time; one transaction each would make the
database's commit the limit. GroupCommit gathers what arrives while a commit is under way and
writes it in the next one (measured in bench/RESULTS.md, "one-click writes").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

Item = TypeVar("Item")
R = TypeVar("R")
ApplyMany = Callable[[Connection, list[Item]], list[R]]
Outcome = tuple[Any, BaseException | None]


def settle(calls: list[tuple[Any, asyncio.Future[Any]]], outcomes: list[Outcome]) -> None:
    """Give each waiting call of a batch its outcome: a value, or the error it raised."""
    for (_, future), (value, error) in zip(calls, outcomes, strict=True):
        if future.done():  # the request went away meanwhile
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


def cancel_all(calls: list[tuple[Any, asyncio.Future[Any]]]) -> None:
    """The event loop is closing: so is every call waiting on a batch."""
    for _, future in calls:
        future.cancel()


class GroupCommit(Generic[Item, R]):
    """Concurrent writes of one kind, committed together by one writer thread.

    `apply(conn, items)` writes several requests' items in the caller's transaction and returns
    one result per item. An item joins the batch that is waiting; the next batch starts as soon
    as the previous one has committed, so an idle app adds no delay and a busy one makes one
    transaction for many requests instead of one each. A caller gets its result only after its
    batch committed. If a batch fails, its items are written again one transaction each, so a
    bad item fails only its own request and every other one is still written or gets its own
    error.
    """

    def __init__(self, engine: Engine, apply: ApplyMany[Item, R], max_batch: int = 200) -> None:
        self.engine = engine
        self.apply = apply
        self.max_batch = max_batch  # keeps the statements' parameter lists short
        self.pending: list[tuple[Item, asyncio.Future[R]]] = []
        self.flushing: asyncio.Task[None] | None = None

    async def run(self, item: Item, writer: ThreadPoolExecutor) -> R:
        """Write `item` with the next batch; its result once that batch is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self.pending.append((item, future))
        if self.flushing is None:
            self.flushing = loop.create_task(self._flush(writer))
        return await future

    async def _flush(self, writer: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                batch = self.pending[: self.max_batch]
                del self.pending[: self.max_batch]
                items = [item for item, _ in batch]
                try:
                    outcomes = await loop.run_in_executor(writer, self.commit, items)
                except asyncio.CancelledError:
                    cancel_all(batch + self.pending)
                    self.pending = []
                    raise
                except Exception as exc:  # the writer thread is gone (the app is stopping)
                    outcomes = [(None, exc)] * len(batch)
                settle(batch, outcomes)
        finally:
            self.flushing = None

    def commit(self, items: list[Item]) -> list[Outcome]:
        """Write all items in one transaction; after a failure, each in a transaction alone."""
        try:
            return [(value, None) for value in self.commit_alone(items)]
        except Exception as exc:
            if len(items) == 1:
                return [(None, exc)]
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning(
                "a group of %d writes failed (%s): writing them one by one", len(items), reason
            )
        outcomes: list[Outcome] = []
        for item in items:
            try:
                outcomes.append((self.commit_alone([item])[0], None))
            except Exception as exc:
                outcomes.append((None, exc))
        return outcomes

    def commit_alone(self, items: list[Item]) -> list[R]:
        """apply(conn, items) in a transaction of its own."""
        with self.engine.begin() as conn:
            results = self.apply(conn, items)
        if len(results) != len(items):
            raise RuntimeError("a grouped write returned the wrong number of results")
        return results


async def commit_each_on_failure(
    apply: Callable[[list[Item]], Awaitable[list[R]]], items: list[Item]
) -> list[Outcome]:
    """GroupCommit.commit's rule for a write that commits on its own (one statement on an
    autocommit connection): `apply(items)` for them all, and after a failure each alone, so a
    bad item fails only its own request."""
    try:
        results = await apply(items)
    except Exception as exc:
        if len(items) == 1:
            return [(None, exc)]
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("a group of %d writes failed (%s): writing them one by one", len(items),
                    reason)
    else:
        if len(results) != len(items):
            raise RuntimeError("a grouped write returned the wrong number of results")
        return [(value, None) for value in results]
    outcomes: list[Outcome] = []
    for item in items:
        try:
            outcomes.append(((await apply([item]))[0], None))
        except Exception as exc:
            outcomes.append((None, exc))
    return outcomes
