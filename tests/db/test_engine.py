from __future__ import annotations

from pathlib import Path

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
