"""The sender's database access: its engine, its write transactions, the address hash in SQL.

SQLite gets `BEGIN IMMEDIATE` on demand (so claims never deadlock) and a registered function
that hashes addresses; PostgreSQL builds the same HMAC-SHA256 from its built-in sha256(), with
the padded keys passed as parameters. So enqueue stays one statement on either engine (see the
protocol at the top of delivery/queue.py).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Connection, Engine, func, literal
from sqlalchemy.sql.elements import ColumnElement

from newsletter.db.engine import is_sqlite, make_engine
from newsletter.keyring import address_hash
from newsletter.tokens import hmac_pads


def sender_engine(url: str, address_key: str) -> Engine:
    """An engine for the sender: SQLite gets BEGIN IMMEDIATE on demand and the hash function."""
    engine = make_engine(url)
    if is_sqlite(engine):
        from sqlalchemy import event

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            dbapi_conn.create_function(
                "nl_email_hash", 1, lambda e: address_hash(e, address_key), deterministic=True
            )

        def on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("immediate", False)
            if not immediate:
                conn.exec_driver_sql("BEGIN")
                return
            # SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries, and a worker
            # whose commit sleeps stalls all its connections (they await that commit before
            # DATA). Two workers then spend most of their time asleep. Retrying every 0.2 ms
            # ourselves takes the lock as soon as the other process lets go of it.
            raw = conn.connection.dbapi_connection
            assert raw is not None  # a connection that is beginning is open
            deadline = time.monotonic() + 30.0
            raw.execute("PRAGMA busy_timeout=0")
            try:
                while True:
                    try:
                        raw.execute("BEGIN IMMEDIATE")
                        return
                    except sqlite3.OperationalError as exc:
                        if "locked" not in str(exc) or time.monotonic() > deadline:
                            raise
                        time.sleep(0.0002)
            finally:
                raw.execute("PRAGMA busy_timeout=30000")

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "begin", on_begin)
    return engine


def hash_expr(engine: Engine, email: Any, address_key: str) -> ColumnElement[Any]:
    """SQL computing keyring.address_hash(email, address_key) for the engine's dialect."""
    if is_sqlite(engine):
        return func.nl_email_hash(email)
    ikey, okey = hmac_pads(address_key)
    inner = func.sha256(
        literal(ikey).op("||")(func.convert_to(func.lower(email), literal("UTF8")))
    )
    return func.encode(func.sha256(literal(okey).op("||")(inner)), literal("hex"))


def write_tx(engine: Engine) -> Any:
    """A transaction that takes SQLite's write lock at BEGIN, so claims never deadlock."""
    return engine.connect().execution_options(immediate=True)
