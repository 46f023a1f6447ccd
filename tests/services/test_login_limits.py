"""Failed logins limited once for all processes: the failures are in the database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from packhouse.db.engine import Database
from packhouse.services.login_limits import SharedFailureLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    first = Database(url)
    first.upgrade()
    second = Database(url)
    yield first, second
    second.dispose()
    first.dispose()


def test_failures_in_one_process_limit_the_other(two_processes: tuple[Database, Database]) -> None:
    clock = Clock()
    a, b = (SharedFailureLimiter(db, 3, 60, clock) for db in two_processes)
    keys = ["user:alice", "addr:10.0.0.1"]
    assert a.attempt(keys) == 0
    assert b.attempt(keys) == 0
    clock.now += 10
    assert a.attempt(keys) == 0
    # three failures in all: both processes refuse until the first one (at t) is 60 s old
    assert b.attempt(keys) == 50
    assert a.attempt(["user:alice"]) == 50
    assert a.attempt(["user:bob", "addr:10.0.0.1"]) == 50  # the address is limited too
    assert b.attempt(["user:bob", "addr:10.0.0.2"]) == 0
    clock.now += 50
    assert b.attempt(keys) == 0


def test_a_success_takes_its_count_back(two_processes: tuple[Database, Database]) -> None:
    clock = Clock()
    a, b = (SharedFailureLimiter(db, 2, 60, clock) for db in two_processes)
    for _ in range(5):
        assert a.attempt(["user:carol"]) == 0
        b.forgive(["user:carol"])  # verified: not a failure
    assert a.attempt(["user:carol"]) == 0
    assert a.attempt(["user:carol"]) == 0
    assert a.attempt(["user:carol"]) > 0


def test_a_limited_key_is_refused_without_writing(
    two_processes: tuple[Database, Database],
) -> None:
    db = two_processes[0]
    limiter = SharedFailureLimiter(db, 1, 60, Clock())
    assert limiter.attempt(["user:dave"]) == 0
    writes: list[str] = []
    event.listen(
        db.engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_: writes.append(sql) if "INSERT" in sql or "BEGIN" in sql else None,
    )
    for _ in range(20):
        assert limiter.attempt(["user:dave"]) > 0
    assert not [sql for sql in writes if "INSERT" in sql or "IMMEDIATE" in sql]


def test_while_the_database_takes_no_writes_the_process_counts_alone(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    db = Database(f"sqlite:///{path}", busy_timeout=0.2)
    db.upgrade()
    limiter = SharedFailureLimiter(db, 2, 60, Clock())
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another writer, for longer than the busy timeout
        assert limiter.attempt(["user:erin"]) == 0
        limiter.forgive(["user:erin"])  # taken back where it was counted
        assert limiter.attempt(["user:erin"]) == 0
        assert limiter.attempt(["user:erin"]) == 0
        assert limiter.attempt(["user:erin"]) > 0  # the limit holds meanwhile
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        db.dispose()
