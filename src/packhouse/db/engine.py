"""The Database: an engine, read and write transactions, migrations, and the serial watcher.

SQLite (the default) runs in WAL mode; write transactions take the write lock up front
(`BEGIN IMMEDIATE`) so concurrent writers queue instead of failing on a lock upgrade.
On PostgreSQL, writers take a transaction-scoped advisory lock, so journal serials commit in
order and "the newest serial" is a safe cache key for every process.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.pool import StaticPool

from packhouse.db import faults, journal_store
from packhouse.db.notify import JournalListener, announce
from packhouse.db.schema import journal

_WRITE_LOCK_KEY = 0x5041434B  # "PACK"


class Database:
    def __init__(self, url: str, busy_timeout: float = 20.0) -> None:
        """`busy_timeout`: seconds a SQLite writer waits for another's write lock before
        the request is answered 503 (db/faults.py)."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.busy_timeout = busy_timeout
        self.engine = _make_engine(url, busy_timeout)
        self.watcher = SerialWatcher(self)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with (
            faults.translated(self.busy_timeout),
            faults.connect(self.engine, retry=not self.is_sqlite) as conn,
            conn.begin(),
        ):
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with (
            faults.translated(self.busy_timeout),
            faults.connect(self.engine, retry=not self.is_sqlite) as conn,
        ):
            conn.execution_options(packhouse_write=True)
            with conn.begin():
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _WRITE_LOCK_KEY})
                    announce(conn)
                yield conn
        self.watcher.changed()

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (idempotent). Alembic is imported only
        when the database is not already at the head (db/revision.py)."""
        from packhouse.db.revision import at_head

        with self.engine.connect() as conn:
            current = at_head(conn)
        if current:
            return
        from packhouse.db.migrate import upgrade

        upgrade(self)

    def dispose(self) -> None:
        self.watcher.close()
        self.engine.dispose()


def _make_engine(url: str, busy_timeout: float) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if not memory:
        path = url.removeprefix("sqlite:///")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("packhouse_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class SerialWatcher:
    """Answers "what is the newest journal serial?" cheaply enough to ask on every request.

    On SQLite a dedicated connection asks `PRAGMA data_version`, which changes only when
    another connection (of any process) has committed; only then is the journal read. On
    PostgreSQL the journal is read only when a write was announced (db/notify.py), or on
    every call while the process cannot listen.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._serial = -1
        self._data_version = -1
        self._raw: sqlite3.Connection | None = None
        self._listener = None if db.is_sqlite else JournalListener(db.engine)
        self._structure_at = -1  # the serial at which _structure was read
        self._structure = 0
        if db.is_sqlite and db.url not in ("sqlite://", "sqlite:///:memory:"):
            path = db.url.removeprefix("sqlite:///")
            self._raw = sqlite3.connect(path, check_same_thread=False, isolation_level=None)

    def current(self) -> int:
        with self._lock:
            if self._raw is not None:
                try:
                    (version,) = self._raw.execute("PRAGMA data_version").fetchone()
                    if version == self._data_version and self._serial >= 0:
                        return self._serial
                    (serial,) = self._raw.execute("SELECT max(serial) FROM journal").fetchone()
                except sqlite3.OperationalError:
                    return self._read_serial()
                self._data_version = version
                self._serial = serial or 0
                return self._serial
            listener = self._listener
            if listener is not None and self._serial >= 0 and listener.news() is False:
                return self._serial
            return self._read_serial()

    def structure(self, serial: int | None = None) -> int:
        """The structure generation (db/journal_store.py) as of the newest serial, or of
        `serial` when the caller has just read it: read again only when the serial moved."""
        serial = self.current() if serial is None else serial
        with self._lock:
            if self._structure_at == serial:
                return self._structure
        with self._db.read() as conn:
            generation = journal_store.structure_generation(conn)
        with self._lock:
            self._structure_at, self._structure = serial, generation
        return generation

    def _read_serial(self) -> int:
        with self._db.read() as conn:
            value = conn.execute(select(func.max(journal.c.serial))).scalar()
        self._serial = int(value or 0)
        return self._serial

    def changed(self) -> None:
        """This process committed: forget the remembered data_version."""
        with self._lock:
            self._data_version = -1
            self._structure_at = -1
            if self._listener is not None:
                self._serial = -1

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._raw is not None:
            self._raw.close()
            self._raw = None
