"""What the proxies keep of their upstreams, as `packhouse cache prune` reads and forgets it:
the cached files (`upstream_files`) and index documents (`upstream_pages`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, select, tuple_

from packhouse.db.schema import upstream_files, upstream_pages

CHUNK = 500  # keys per DELETE ... WHERE (repository_id, key) IN (...)


def cached_files(conn: Connection) -> Sequence[tuple[int, str, str, int, datetime]]:
    """(repository id, filename, sha256, size, last used) of every cached file, least
    recently used first."""
    rows = conn.execute(
        select(
            upstream_files.c.repository_id,
            upstream_files.c.filename,
            upstream_files.c.sha256,
            upstream_files.c.size,
            upstream_files.c.last_used_at,
        ).order_by(upstream_files.c.last_used_at, upstream_files.c.filename)
    ).all()
    return [tuple(row) for row in rows]


def cached_pages(conn: Connection) -> Sequence[tuple[int, str, str | None, datetime]]:
    """(repository id, key, blob sha256, last confirmed) of every cached index document."""
    rows = conn.execute(
        select(
            upstream_pages.c.repository_id,
            upstream_pages.c.key,
            upstream_pages.c.blob_sha256,
            upstream_pages.c.checked_at,
        )
    ).all()
    return [tuple(row) for row in rows]


def forget(
    conn: Connection, files: Sequence[tuple[int, str]], pages: Sequence[tuple[int, str]]
) -> None:
    """Drop the rows of these (repository id, filename) files and (repository id, key) pages."""
    for table, column, keys in (
        (upstream_files, upstream_files.c.filename, files),
        (upstream_pages, upstream_pages.c.key, pages),
    ):
        for start in range(0, len(keys), CHUNK):
            chunk = list(keys[start : start + CHUNK])
            conn.execute(delete(table).where(tuple_(table.c.repository_id, column).in_(chunk)))
