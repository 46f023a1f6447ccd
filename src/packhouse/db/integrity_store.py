"""What `packhouse fsck --repair` reads and mends: every use of a blob, and forgetting a
proxy's cached copy (it is fetched from the upstream again on the next read)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, delete, select

from packhouse.db.schema import artifacts, repositories, upstream_files, upstream_pages

UseKind = Literal["artifact", "metadata", "upstream_file", "upstream_page"]


@dataclass(frozen=True)
class BlobUse:
    kind: UseKind
    sha256: str
    repository: str  # format/name
    label: str  # the filename, or the cached page's key
    size: int | None  # the size the row records (None: not recorded)
    wheel_sha256: str | None = None  # a metadata file's wheel, where it can be re-derived


def blob_uses(conn: Connection) -> Iterator[BlobUse]:
    """Every blob a live row needs, a row at a time."""
    qualified = (repositories.c.format + "/" + repositories.c.name).label("repository")
    rows = conn.execution_options(yield_per=1000).execute(
        select(
            qualified,
            artifacts.c.filename,
            artifacts.c.sha256,
            artifacts.c.size,
            artifacts.c.metadata_sha256,
            artifacts.c.packagetype,
        )
        .join(repositories, repositories.c.id == artifacts.c.repository_id)
        .where(artifacts.c.deleted.is_(False))
        .order_by(artifacts.c.id)
    )
    for r in rows:
        yield BlobUse("artifact", r.sha256, r.repository, r.filename, r.size)
        if r.metadata_sha256:
            wheel = r.sha256 if r.packagetype == "wheel" else None
            label = f"{r.filename}.metadata"
            yield BlobUse("metadata", r.metadata_sha256, r.repository, label, None, wheel)
    files = conn.execution_options(yield_per=1000).execute(
        select(qualified, upstream_files.c.filename, upstream_files.c.sha256, upstream_files.c.size)
        .join(repositories, repositories.c.id == upstream_files.c.repository_id)
        .order_by(upstream_files.c.repository_id, upstream_files.c.filename)
    )
    for f in files:
        yield BlobUse("upstream_file", f.sha256, f.repository, f.filename, f.size)
    pages = conn.execution_options(yield_per=1000).execute(
        select(qualified, upstream_pages.c.key, upstream_pages.c.blob_sha256)
        .join(repositories, repositories.c.id == upstream_pages.c.repository_id)
        .where(upstream_pages.c.blob_sha256.is_not(None))
        .order_by(upstream_pages.c.repository_id, upstream_pages.c.key)
    )
    for p in pages:
        yield BlobUse("upstream_page", p.blob_sha256, p.repository, p.key, None)


def forget_upstream_copies(conn: Connection, sha256: str) -> int:
    """Drop every proxy cache row kept in this blob; returns how many."""
    files = conn.execute(delete(upstream_files).where(upstream_files.c.sha256 == sha256))
    pages = conn.execute(delete(upstream_pages).where(upstream_pages.c.blob_sha256 == sha256))
    return int(files.rowcount or 0) + int(pages.rowcount or 0)
