"""`packhouse cache prune`: forget what proxies fetched, oldest use first.

Cached files unused for longer than `older_than`, then the least recently used ones until
the cache fits `max_size`, and index documents not confirmed by their upstream for longer
than `older_than`. Rows go first, in one write transaction; their blobs are then dropped
only where nothing else (an artifact, another proxy's row) still uses them. Nothing hosted is
ever touched, and what is pruned is fetched again on its next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from packhouse.db import upstream_store
from packhouse.services.artifacts import drop_unreferenced
from packhouse.services.context import Context
from packhouse.units import aware


@dataclass(frozen=True)
class CachedFile:
    repository_id: int
    filename: str
    sha256: str
    size: int
    last_used_at: datetime


@dataclass(frozen=True)
class CachedPage:
    repository_id: int
    key: str
    blob_sha256: str | None
    checked_at: datetime


@dataclass(frozen=True)
class PruneReport:
    files: int  # cached files forgotten
    file_bytes: int
    pages: int  # cached index documents forgotten
    kept_files: int
    kept_bytes: int
    blobs_deleted: int
    dry_run: bool


def prune(
    ctx: Context,
    *,
    older_than: timedelta | None = None,
    max_size: int | None = None,
    dry_run: bool = False,
) -> PruneReport:
    now = ctx.clock()
    with ctx.db.read() as conn:
        files = [CachedFile(*row) for row in upstream_store.cached_files(conn)]
        pages = [CachedPage(*row) for row in upstream_store.cached_pages(conn)]
    cutoff = now - older_than if older_than is not None else None
    doomed = [f for f in files if cutoff is not None and aware(f.last_used_at) < cutoff]
    left = [f for f in files if f not in doomed]
    if max_size is not None:
        total = sum(f.size for f in left)
        while left and total > max_size:
            oldest = left.pop(0)
            doomed.append(oldest)
            total -= oldest.size
    old_pages = [p for p in pages if cutoff is not None and aware(p.checked_at) < cutoff]
    shas = {f.sha256 for f in doomed} | {p.blob_sha256 for p in old_pages if p.blob_sha256}
    deleted = 0
    if not dry_run and (doomed or old_pages):
        with ctx.db.write() as conn:
            upstream_store.forget(
                conn,
                [(f.repository_id, f.filename) for f in doomed],
                [(p.repository_id, p.key) for p in old_pages],
            )
        deleted = len(drop_unreferenced(ctx, shas))
    return PruneReport(
        files=len(doomed),
        file_bytes=sum(f.size for f in doomed),
        pages=len(old_pages),
        kept_files=len(left),
        kept_bytes=sum(f.size for f in left),
        blobs_deleted=deleted,
        dry_run=dry_run,
    )
