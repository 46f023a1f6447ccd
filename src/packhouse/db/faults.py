"""Database failures a caller can only wait out, told apart from bugs in one place.

- SQLite locked by another writer (`SQLITE_BUSY`, `SQLITE_LOCKED`) past the busy timeout:
  SQLite itself retried with backoff for that long. Answered as `Unavailable` (503 with
  Retry-After): the transaction was rolled back, nothing was written.
- SQLite out of space (`SQLITE_FULL`): `StorageFull` (507), rolled back likewise.
- PostgreSQL unreachable (refused, reset, shut down, timed out): a new connection is tried
  a few times with backoff (`connect`), then `Unavailable`. A statement that fails because
  the connection dropped is not retried here (it may have been half a transaction; the
  transaction is rolled back and the client is told to send the request again).

Anything else is re-raised as it is: a bug or a constraint is not a reason to wait.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from packhouse.errors import PackhouseError, StorageFull, Unavailable

CONNECT_BACKOFF = (0.05, 0.2, 0.5)  # seconds between the tries of a new connection
RETRY_AFTER = 5  # seconds, told to clients in Retry-After
_SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_SQLITE_FULL = 13


def classify(exc: DBAPIError, busy_timeout: float) -> PackhouseError | None:
    """The domain error a database failure means, or None if it is not one to wait out."""
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = (getattr(orig, "sqlite_errorcode", None) or 0) & 0xFF
        if code in _SQLITE_BUSY:
            return Unavailable(
                f"the database is locked by another writer for longer than the server waits"
                f" ({busy_timeout:g} s); nothing was changed: send the request again",
                RETRY_AFTER,
            )
        if code == _SQLITE_FULL:
            return StorageFull()
        return None
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return Unavailable(
            "the server cannot reach its database; nothing was changed: send the request"
            " again shortly",
            RETRY_AFTER,
        )
    return None


@contextmanager
def translated(busy_timeout: float) -> Iterator[None]:
    """Raise the domain error of a database failure met inside the block."""
    try:
        yield
    except DBAPIError as exc:
        mapped = classify(exc, busy_timeout)
        if mapped is None:
            raise
        raise mapped from exc


def connect(engine: Engine, *, retry: bool) -> Connection:
    """A connection from the pool; with `retry`, a failure to connect is tried again after
    each of CONNECT_BACKOFF's delays before it is raised."""
    delays = CONNECT_BACKOFF if retry else ()
    for delay in delays:
        try:
            return engine.connect()
        except OperationalError:
            time.sleep(delay)
    return engine.connect()
