"""Download counts: counted in memory per hosted file and UTC day, written in batches.

`count` is what a file response calls: a dict increment under a lock nobody holds for long
(the write happens after the pending counts are swapped out), so the download itself never
waits for the database. Every FLUSH_SECONDS (or FLUSH_ENTRIES pending entries), the next
`count` hands the batch to a thread that adds it in one transaction; a reader of the counts
(the web UI) flushes first, so it sees this process's downloads at once. Counts still
pending when the process stops are lost (at most FLUSH_SECONDS' worth). Proxied files that
are not stored as artifacts are not counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from packhouse.db import download_store
from packhouse.db.repository_store import Repository
from packhouse.services.context import Context
from packhouse.services.pypi_parts import version_key
from packhouse.types import RepoKind

log = logging.getLogger("packhouse.downloads")

FLUSH_SECONDS = 10.0
FLUSH_ENTRIES = 10_000
CHART_DAYS = 30
READ_TTL = 60.0
MAX_KEPT = 1024


@dataclass(frozen=True)
class Downloads:
    days: tuple[tuple[str, int], ...]  # every day of the window, oldest first, zeros included
    total: int  # in the window
    by_version: tuple[tuple[str, int], ...]  # all time, newest version first


class DownloadCounter:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, str], int] = {}
        self._since = time.monotonic()
        self._write_lock = threading.Lock()  # one batch written at a time, in order
        self._counted = 0  # downloads this process counted, ever: moves what readers kept
        self._read: dict[tuple[object, ...], tuple[int, float, Downloads]] = {}

    def count(self, artifact_id: int) -> None:
        key = (artifact_id, datetime.now(UTC).strftime("%Y-%m-%d"))
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + 1
            self._counted += 1
            due = (
                time.monotonic() - self._since >= FLUSH_SECONDS
                or len(self._pending) >= FLUSH_ENTRIES
            )
            batch = self._swap() if due else None
        if batch:
            threading.Thread(target=self._write, args=(batch,), daemon=True).start()

    def flush(self) -> None:
        """Write what is pending now (in the calling thread)."""
        with self._lock:
            batch = self._swap()
        if batch:
            self._write(batch)

    def _swap(self) -> dict[tuple[int, str], int]:
        batch, self._pending = self._pending, {}
        self._since = time.monotonic()
        return batch

    def _write(self, batch: dict[tuple[int, str], int]) -> None:
        try:
            with self._write_lock, self._ctx.db.write() as conn:
                download_store.add(conn, batch)
        except Exception:  # counting must never fail a download; the batch is dropped
            log.warning("could not record %d download counts", len(batch), exc_info=True)

    # -- reading ----------------------------------------------------------------------------

    def of_project(
        self,
        order: Sequence[Repository],
        name: str,
        version: str | None = None,
        days: int = CHART_DAYS,
    ) -> Downloads:
        """Downloads of the project's hosted files in the order (of one version, if given):
        per day over the last `days` days, and all time per version. An answer is kept
        while this process counts nothing new, for at most READ_TTL seconds (other
        processes' downloads show within that)."""
        key = (tuple(r.id for r in order), name, version, days)
        kept = self._read.get(key)
        if kept is not None and kept[0] == self._counted and time.monotonic() < kept[1]:
            return kept[2]
        counted = self._counted
        found = self._of_project(order, name, version, days)
        if len(self._read) >= MAX_KEPT:
            self._read.clear()
        self._read[key] = (counted, time.monotonic() + READ_TTL, found)
        return found

    def _of_project(
        self, order: Sequence[Repository], name: str, version: str | None, days: int
    ) -> Downloads:
        self.flush()
        hosted = [r.id for r in order if r.kind is not RepoKind.PROXY]
        today = datetime.now(UTC).date()
        first = today - timedelta(days=days - 1)
        with self._ctx.db.read() as conn:
            rows = download_store.versions_of(conn, hosted, name)
            ids = [artifact_id for artifact_id, v in rows if version is None or v == version]
            daily = dict(download_store.per_day(conn, ids, first.isoformat()))
            totals = download_store.per_artifact(conn, [artifact_id for artifact_id, _ in rows])
        by_version: dict[str, int] = {}
        for artifact_id, v in rows:
            by_version[v] = by_version.get(v, 0) + totals.get(artifact_id, 0)
        window = tuple(
            (
                (first + timedelta(days=i)).isoformat(),
                daily.get((first + timedelta(days=i)).isoformat(), 0),
            )
            for i in range(days)
        )
        ranked = sorted(by_version.items(), key=lambda kv: version_key(kv[0]), reverse=True)
        return Downloads(window, sum(n for _, n in window), tuple(ranked))
