"""`packhouse cache prune`: forget what proxies fetched, oldest use first.

Cached files unused for longer than `older_than`, then the least recently used ones until
the cache fits `max_size`, and index documents not confirmed by their upstream for longer
than `older_than`. Rows go first, in one write transaction; their blobs are then dropped
only where nothing else (an artifact, another proxy's row) still uses them. Nothing hosted is
ever touched, and what is pruned is fetched again on its next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, tuple_

from packhouse.db.schema import upstream_files, upstream_pages
from packhouse.services.artifacts import drop_unreferenced
from packhouse.services.context import Context
from packhouse.units import aware


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
        files = conn.execute(
            select(
                upstream_files.c.repository_id,
                upstream_files.c.filename,
                upstream_files.c.sha256,
                upstream_files.c.size,
                upstream_files.c.last_used_at,
            ).order_by(upstream_files.c.last_used_at, upstream_files.c.filename)
        ).all()
        pages = conn.execute(
            select(
                upstream_pages.c.repository_id,
                upstream_pages.c.key,
                upstream_pages.c.blob_sha256,
                upstream_pages.c.checked_at,
            )
        ).all()
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
            for chunk in _chunks([(f.repository_id, f.filename) for f in doomed]):
                conn.execute(
                    delete(upstream_files).where(
                        tuple_(upstream_files.c.repository_id, upstream_files.c.filename).in_(chunk)
                    )
                )
            for chunk in _chunks([(p.repository_id, p.key) for p in old_pages]):
                conn.execute(
                    delete(upstream_pages).where(
                        tuple_(upstream_pages.c.repository_id, upstream_pages.c.key).in_(chunk)
                    )
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


def _chunks(items: list[tuple[int, str]], size: int = 500) -> list[list[tuple[int, str]]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
