"""The migrations build exactly the schema that schema.py declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from packhouse.db import journal_store
from packhouse.db.engine import Database
from packhouse.db.schema import metadata


def drift(db: Database) -> list[object]:
    with db.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_sqlite_migrations_match_the_schema() -> None:
    db = Database("sqlite://")
    db.upgrade()
    assert drift(db) == []
    db.dispose()


@pytest.mark.postgres
def test_postgres_migrations_match_the_schema_and_serials_rise(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        db.upgrade()
        assert drift(db) == []
        before = db.watcher.current()
        with db.write() as conn:
            first = journal_store.append(conn, actor="t", action="test")
        with db.write() as conn:
            second = journal_store.append(conn, actor="t", action="test")
        assert before < first < second == db.watcher.current()
    finally:
        db.dispose()
