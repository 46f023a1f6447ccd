"""Cross-process news of journal writes on PostgreSQL: LISTEN/NOTIFY.

Every write transaction sends `NOTIFY packhouse_journal` (delivered when it commits, dropped
when it rolls back). Each process keeps one connection that LISTENs on that channel, outside
the pool. Asking "did anyone write since I last looked?" is then a poll of that connection's
socket, not a query: the serial watcher (db/engine.py) reads the journal only when a
notification came in. PostgreSQL signals the listening sessions as the writer commits, so
the news is there within milliseconds, well before a client's next request reaches another
process. When the listening connection fails, the watcher reads the journal on every call
again, and the connection is made again after `RETRY` seconds.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from typing import Any

from sqlalchemy import Connection, Engine, text

CHANNEL = "packhouse_journal"
RETRY = 5.0  # seconds between attempts to listen again after the connection failed

log = logging.getLogger("packhouse.db")


def announce(conn: Connection) -> None:
    """Tell every listening process, when this transaction commits, that it wrote."""
    conn.execute(text(f"NOTIFY {CHANNEL}"))


class JournalListener:
    """One LISTENing connection. `news()` answers whether a notification arrived since the
    last call; None when it cannot tell (not listening: the caller must read the journal)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._conn: Any = None  # the psycopg connection, detached from the pool
        self._retry_at = 0.0

    def listen(self) -> bool:
        """Start listening (again); False when that failed. Notifications sent from now on
        are seen: read the journal after this returns True, not before."""
        with self._lock:
            return self._listen()

    def _listen(self) -> bool:
        if self._conn is not None:
            return True
        if time.monotonic() < self._retry_at:
            return False
        try:
            raw = self._engine.raw_connection()
            conn: Any = raw.driver_connection
            raw.detach()  # held for the process's life, not a pool slot
            conn.autocommit = True
            conn.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:  # any failure to connect means: poll the journal instead
            log.warning("cannot LISTEN for journal writes (reading the journal instead): %s", exc)
            self._retry_at = time.monotonic() + RETRY
            return False
        self._conn = conn
        return True

    def news(self) -> bool | None:
        with self._lock:
            conn = self._conn
            if conn is None:
                return True if self._listen() else None
            try:
                readable, _, _ = select.select([conn.fileno()], [], [], 0)
                if not readable:
                    return False
                # drain what arrived (a closed connection raises here); bytes that were
                # not yet a whole notification count as news too: the journal is cheap
                list(conn.notifies(timeout=0))
                return True
            except Exception as exc:
                log.warning("lost the LISTEN connection (reading the journal instead): %s", exc)
                self._drop()
                self._retry_at = time.monotonic() + RETRY
                return None

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken
                log.debug("closing a broken LISTEN connection failed", exc_info=True)

    def close(self) -> None:
        with self._lock:
            self._drop()
