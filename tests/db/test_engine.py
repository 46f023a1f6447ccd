from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import event, text

from packhouse.db import journal_store
from packhouse.db.engine import Database
from packhouse.db.migrate import current_revision


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    db.upgrade()
    db.upgrade()
    assert current_revision(db) is not None
    db.dispose()


def test_serial_watcher_sees_commits_of_other_processes_connections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    server = Database(url)
    server.upgrade()
    other = Database(url)  # as a CLI command running beside the server would
    try:
        before = server.watcher.current()
        assert server.watcher.current() == before  # unchanged: answered from memory
        with other.write() as conn:
            made = journal_store.append(conn, actor="cli", action="test")
        assert server.watcher.current() == made > before
    finally:
        other.dispose()
        server.dispose()


def test_journal_filters(tmp_path: Path) -> None:
    db = Database("sqlite://")
    db.upgrade()
    with db.write() as conn:
        journal_store.append(conn, actor="alice", action="upload", repository="pypi/main")
        journal_store.append(conn, actor="bob", action="yank", repository="conda/main")
        journal_store.append(
            conn, actor="alice", action="upload", repository="pypi/team", project="my-pkg"
        )
    with db.read() as conn:
        both = journal_store.entries(conn, repository="main")
        assert [e.actor for e in both] == ["bob", "alice"]
        assert [e.actor for e in journal_store.entries(conn, repository="conda/main")] == ["bob"]
        assert len(journal_store.entries(conn, project="My_Pkg")) == 1
        assert len(journal_store.entries(conn, actor="alice", action="upload")) == 2
        first = journal_store.entries(conn, limit=1)[0]
        assert first.repository == "pypi/team"
        assert first.time.tzinfo is not None
    db.dispose()


@pytest.mark.postgres
def test_postgres_watcher_learns_of_writes_by_notify_not_by_query(postgres_url: str) -> None:
    server = Database(postgres_url)
    server.upgrade()
    other = Database(postgres_url)  # another process on the same database
    statements: list[str] = []
    event.listen(server.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        server.watcher.current()
        before = server.watcher.current()  # now listening
        statements.clear()
        for _ in range(50):
            assert server.watcher.current() == before
        assert statements == []  # nothing written: no query at all

        with other.write() as conn:
            made = journal_store.append(conn, actor="cli", action="test")
        assert wait_for(lambda: server.watcher.current() == made)
        statements.clear()
        assert server.watcher.current() == made
        assert statements == []

        # the listening connection dies: every call reads the journal again, so no write
        # is missed, and listening starts again later
        listener = server.watcher._listener  # its backend is what we kill
        assert listener is not None
        pid = listener._conn.info.backend_pid
        with other.write() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            again = journal_store.append(conn, actor="cli", action="test")
        assert wait_for(lambda: server.watcher.current() == again)
        with other.write() as conn:
            last = journal_store.append(conn, actor="cli", action="test")
        assert server.watcher.current() == last  # read, not waited for
    finally:
        other.dispose()
        server.dispose()


def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True
