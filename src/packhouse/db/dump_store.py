"""Every table's rows as plain JSON values, out and back in: what `packhouse export` and
`packhouse import` move between databases (SQLite and PostgreSQL alike).

Values are converted by column type, one rule each way: DateTime as ISO 8601 in UTC (SQLite
hands back naive times, which are UTC here), LargeBinary as base64, JSON as itself. Rows come
out in primary-key order, so two databases holding the same data dump to the same lines.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    LargeBinary,
    Table,
    delete,
    func,
    insert,
    select,
    text,
)

from packhouse.db.engine import Database
from packhouse.db.schema import metadata

# Tables in an order that satisfies every foreign key (parents first).
TABLES: tuple[str, ...] = tuple(t.name for t in metadata.sorted_tables)


def table(name: str) -> Table:
    return metadata.tables[name]


@contextmanager
def snapshot(db: Database) -> Iterator[Connection]:
    """A read transaction that sees one moment throughout (SQLite's read transactions do;
    PostgreSQL needs REPEATABLE READ), so an export of a running server is consistent."""
    with db.engine.connect() as conn:
        if not db.is_sqlite:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def count(conn: Connection, name: str) -> int:
    return int(conn.execute(select(func.count()).select_from(table(name))).scalar_one())


def counts(conn: Connection) -> dict[str, int]:
    return {name: count(conn, name) for name in TABLES}


def iter_rows(conn: Connection, name: str, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """The table's rows as JSON-ready dicts, in primary-key order, fetched `batch` at a time
    (a server-side cursor on PostgreSQL: never the whole table in memory)."""
    t = table(name)
    query = select(t).order_by(*t.primary_key.columns)
    result = conn.execution_options(yield_per=batch).execute(query)
    kinds = _kinds(t)
    names = list(kinds)
    for row in result:
        yield {col: _encode(kinds[col], value) for col, value in zip(names, row, strict=True)}


def insert_rows(conn: Connection, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows as `iter_rows` gave them (keys are checked against the table's columns)."""
    if not rows:
        return
    t = table(name)
    kinds = _kinds(t)
    decoded = []
    for row in rows:
        unknown = set(row) - set(kinds)
        if unknown:
            raise ValueError(f"{name}: unknown columns {sorted(unknown)}")
        decoded.append({col: _decode(kinds[col], row.get(col)) for col in kinds})
    conn.execute(insert(t), decoded)


@functools.cache
def seeded_tables() -> frozenset[str]:
    """Tables the migrations themselves fill (bookkeeping such as `generations`): found by
    migrating a scratch in-memory database, so a table added later is found too. An import
    treats a target holding only these rows as empty and replaces them."""
    scratch = Database("sqlite://")
    try:
        scratch.upgrade()
        with scratch.read() as conn:
            return frozenset(name for name, n in counts(conn).items() if n)
    finally:
        scratch.dispose()


def clear(conn: Connection, name: str) -> None:
    conn.execute(delete(table(name)))


def reset_sequences(conn: Connection) -> None:
    """After rows were inserted with their ids: PostgreSQL's sequences start past the
    largest id (SQLite's AUTOINCREMENT follows explicit ids by itself)."""
    if conn.dialect.name != "postgresql":
        return
    for t in metadata.sorted_tables:
        col = t.autoincrement_column
        if col is None:
            continue
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:t, :c),"  # noqa: S608 (names from the schema)
                f' coalesce((SELECT max("{col.name}") FROM "{t.name}"), 0) + 1, false)'
            ),
            {"t": t.name, "c": col.name},
        )


def _kinds(t: Table) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for col in t.columns:
        if isinstance(col.type, DateTime):
            kinds[str(col.name)] = "time"
        elif isinstance(col.type, LargeBinary):
            kinds[str(col.name)] = "bytes"
        else:
            kinds[str(col.name)] = "plain"
    return kinds


def _encode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "time":
        when: datetime = value
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.astimezone(UTC).isoformat()
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _decode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "time":
        return datetime.fromisoformat(value)
    if kind == "bytes":
        return base64.b64decode(value, validate=True)
    return value


# Columns naming a blob the row needs, per table (a deleted artifact's bytes are gone).
_BLOB_COLUMNS: dict[str, tuple[str, ...]] = {
    "artifacts": ("sha256", "metadata_sha256"),
    "upstream_files": ("sha256",),
    "upstream_pages": ("blob_sha256",),
}


def blob_refs(name: str, row: Mapping[str, Any]) -> list[str]:
    """The blobs a dumped row needs stored beside it."""
    columns = _BLOB_COLUMNS.get(name)
    if columns is None or row.get("deleted"):
        return []
    return [row[c] for c in columns if row.get(c)]
