"""The migrations build exactly the schema that schema.py declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from packhouse.db import journal_store
from packhouse.db.engine import Database
from packhouse.db.schema import SEARCH_OBJECTS, metadata


def declared(name: str | None, type_: str, parents: object) -> bool:
    """Leave out what migration 0013 makes for one dialect only (FTS5's tables, a GIN
    index over an expression): schema.py cannot declare them."""
    return not (name or "").startswith(SEARCH_OBJECTS)


def drift(db: Database) -> list[object]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": declared})
        return list(compare_metadata(context, metadata))


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
