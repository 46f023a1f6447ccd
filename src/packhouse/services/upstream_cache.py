"""What proxies keep of their upstreams: index documents (`upstream_pages`) and fetched files
(`upstream_files`, stored as blobs by sha256), and the one-fetch-at-a-time locks and counters
both formats' proxies share.

None of this is journalled: a cache fill is not a change anyone made, and it must not move
the journal serial (that would throw away every cached page of every repository).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, insert, select, update

from packhouse.auth.redact import redact_url
from packhouse.db.repository_store import Repository
from packhouse.db.schema import upstream_files, upstream_pages
from packhouse.errors import NotFound, UpstreamError
from packhouse.services.context import Context
from packhouse.storage.base import IncomingFile
from packhouse.types import Sha256
from packhouse.units import aware
from packhouse.upstream.http import UpstreamClient
from packhouse.upstream.netpolicy import NetworkPolicy

USE_RESOLUTION = 3600.0  # seconds: how fresh a cached file's last_used_at is kept


@dataclass(frozen=True)
class StoredPage:
    """One cached upstream document."""

    status: int  # the upstream's answer: 200, or 404 (remembered too)
    etag: str | None
    last_modified: str | None
    content_type: str | None
    body: bytes | None  # small documents (a PyPI page, parsed)
    blob_sha256: Sha256 | None  # big ones (conda repodata), kept as a blob
    size: int
    digest: str  # changes whenever the content does
    fetched_at: datetime
    checked_at: datetime


@dataclass(frozen=True)
class StoredFile:
    repository_id: int
    filename: str
    project: str
    subdir: str | None
    sha256: Sha256
    size: int


@dataclass
class ProxyStats:
    """Counters for /metrics: index documents and files served from the cache (hits),
    fetched (misses), served stale because the upstream failed, and upstream errors."""

    hits: int = 0
    misses: int = 0
    stale: int = 0
    errors: int = 0
    file_hits: int = 0
    file_misses: int = 0


def digest_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


class UpstreamCache:
    """The proxies' shared machinery: one HTTP client with the network policy, the cache
    tables, per-key locks so concurrent requests for the same document or file make one
    upstream request, and counters."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.client = UpstreamClient(
            NetworkPolicy(settings.upstream_allowed_networks), timeout=settings.upstream_timeout
        )
        self.stats = ProxyStats()
        self._locks: dict[tuple[object, ...], threading.Lock] = {}
        self._guard = threading.Lock()
        # When a refresh failed, the cached copy is served without asking again until then
        # (monotonic seconds), so a down upstream costs one timeout, not one per request.
        self.backoff: dict[tuple[object, ...], float] = {}
        self._used: dict[tuple[int, str], float] = {}

    def close(self) -> None:
        self.client.close()

    def ttl(self, proxy: Repository) -> int:
        return self.ctx.settings.upstream_ttl if proxy.proxy.ttl is None else proxy.proxy.ttl

    def offline(self, proxy: Repository) -> bool:
        return self.ctx.settings.upstream_offline or proxy.proxy.offline

    @contextmanager
    def one_at_a_time(self, key: tuple[object, ...]) -> Iterator[None]:
        """Hold the lock of `key`; a second caller waits and then finds the cache filled."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            try:
                yield
            finally:
                # forgotten once released; a caller still waiting on it, or one who makes a
                # new lock, re-checks the cache first and finds what this one stored
                with self._guard:
                    if self._locks.get(key) is lock:
                        del self._locks[key]

    # -- index documents ------------------------------------------------------------------

    def read_page(self, repository_id: int, key: str) -> StoredPage | None:
        with self.ctx.db.read() as conn:
            row = conn.execute(
                select(upstream_pages).where(
                    upstream_pages.c.repository_id == repository_id, upstream_pages.c.key == key
                )
            ).first()
        if row is None:
            return None
        return StoredPage(
            status=row.status,
            etag=row.etag,
            last_modified=row.last_modified,
            content_type=row.content_type,
            body=row.body,
            blob_sha256=Sha256(row.blob_sha256) if row.blob_sha256 else None,
            size=row.size,
            digest=row.digest,
            fetched_at=aware(row.fetched_at),
            checked_at=aware(row.checked_at),
        )

    def write_page(self, repository_id: int, key: str, page: StoredPage) -> None:
        values: dict[str, Any] = {
            "status": page.status,
            "etag": page.etag,
            "last_modified": page.last_modified,
            "content_type": page.content_type,
            "body": page.body,
            "blob_sha256": page.blob_sha256,
            "size": page.size,
            "digest": page.digest,
            "fetched_at": page.fetched_at,
            "checked_at": page.checked_at,
        }
        with self.ctx.db.write() as conn:
            where = (upstream_pages.c.repository_id == repository_id) & (
                upstream_pages.c.key == key
            )
            if conn.execute(update(upstream_pages).where(where).values(**values)).rowcount == 0:
                conn.execute(
                    insert(upstream_pages).values(repository_id=repository_id, key=key, **values)
                )

    def touch_page(self, repository_id: int, key: str, checked_at: datetime) -> None:
        """The upstream confirmed the cached copy (304)."""
        with self.ctx.db.write() as conn:
            conn.execute(
                update(upstream_pages)
                .where(upstream_pages.c.repository_id == repository_id, upstream_pages.c.key == key)
                .values(checked_at=checked_at)
            )

    def page_names(self, repository_ids: list[int], prefix: str) -> set[str]:
        """The names (keys under `prefix`) a proxy has cached with a 200 answer."""
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(upstream_pages.c.key).where(
                    upstream_pages.c.repository_id.in_(repository_ids),
                    upstream_pages.c.status == 200,
                    upstream_pages.c.key.startswith(prefix),
                )
            )
            return {r.key.removeprefix(prefix) for r in rows}

    def pages_stamp(self, repository_ids: list[int]) -> tuple[object, ...]:
        """Changes whenever a proxy caches a new document or one changes."""
        with self.ctx.db.read() as conn:
            pages = upstream_pages.c
            columns = (pages.repository_id, pages.key, pages.digest)
            rows = conn.execute(
                select(*columns)
                .where(upstream_pages.c.repository_id.in_(repository_ids))
                .order_by(upstream_pages.c.repository_id, upstream_pages.c.key)
            )
            return (digest_of(repr([tuple(r) for r in rows]).encode()),)

    # -- files ----------------------------------------------------------------------------

    def find_file(self, sha256: str, filename: str) -> list[StoredFile]:
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(upstream_files).where(
                    upstream_files.c.sha256 == sha256, upstream_files.c.filename == filename
                )
            )
            return [_stored_file(r) for r in rows]

    def file_in(self, repository_id: int, filename: str) -> StoredFile | None:
        with self.ctx.db.read() as conn:
            row = conn.execute(
                select(upstream_files).where(
                    upstream_files.c.repository_id == repository_id,
                    upstream_files.c.filename == filename,
                )
            ).first()
        return _stored_file(row) if row is not None else None

    def add_file(self, conn: Connection, file: StoredFile, now: datetime) -> None:
        conn.execute(
            delete(upstream_files).where(
                upstream_files.c.repository_id == file.repository_id,
                upstream_files.c.filename == file.filename,
            )
        )
        conn.execute(
            insert(upstream_files).values(
                repository_id=file.repository_id,
                filename=file.filename,
                project=file.project,
                subdir=file.subdir,
                sha256=file.sha256,
                size=file.size,
                fetched_at=now,
                last_used_at=now,
            )
        )

    def fetch_file(
        self,
        proxy: Repository,
        *,
        url: str,
        sha256: str,
        filename: str,
        project: str,
        subdir: str | None = None,
    ) -> StoredFile:
        """The file, from the cache or fetched once from the upstream (concurrent requests
        for it wait for that one fetch), checked against the sha256 the upstream's index
        gave before it is kept. A mismatch keeps nothing and raises UpstreamError."""
        cached = self._cached_file(proxy, filename, sha256)
        if cached is not None:
            return cached
        if self.offline(proxy):
            raise NotFound(
                f"{filename!r} is not cached in {proxy.qualified_name}, which is offline"
            )
        with self.one_at_a_time(("file", proxy.id, filename)):
            cached = self._cached_file(proxy, filename, sha256)
            if cached is not None:
                return cached
            self.stats.file_misses += 1
            stored = self._download(proxy, url, sha256, filename, project, subdir)
        return stored

    def _cached_file(self, proxy: Repository, filename: str, sha256: str) -> StoredFile | None:
        found = self.file_in(proxy.id, filename)
        if found is not None and found.sha256 == sha256 and self.still_stored(found):
            return found
        return None

    def still_stored(self, file: StoredFile) -> bool:
        """Whether a cached file's bytes are there (noting the use, for `cache prune`)."""
        if not self.ctx.blobs.exists(file.sha256):
            return False
        self.stats.file_hits += 1
        self._note_use(file)
        return True

    def _note_use(self, file: StoredFile) -> None:
        """Keep `last_used_at` (what `cache prune` goes by) right to the hour, writing at
        most once an hour per file."""
        key = (file.repository_id, file.filename)
        now = time.monotonic()
        if now - self._used.get(key, -USE_RESOLUTION) < USE_RESOLUTION:
            return
        self._used[key] = now
        if len(self._used) > 100_000:
            self._used.clear()
        with self.ctx.db.write() as conn:
            conn.execute(
                update(upstream_files)
                .where(
                    upstream_files.c.repository_id == file.repository_id,
                    upstream_files.c.filename == file.filename,
                )
                .values(last_used_at=self.ctx.clock())
            )

    def _download(
        self,
        proxy: Repository,
        url: str,
        sha256: str,
        filename: str,
        project: str,
        subdir: str | None,
    ) -> StoredFile:
        assert proxy.upstream_url is not None
        auth = proxy.proxy.auth if same_origin(url, proxy.upstream_url) else None
        shown = redact_url(url)
        limit = self.ctx.settings.upstream_max_file_bytes
        try:
            with (
                IncomingFile(self.ctx.tmp_dir, limit, f"upstream file {filename!r}") as incoming,
                self.client.stream(url, auth=auth) as response,
            ):
                if response.status != 200:
                    raise UpstreamError(
                        f"the upstream of {proxy.qualified_name} answered {response.status}"
                        f" for {shown}"
                    )
                for chunk in response.iter_bytes(1024 * 1024):
                    incoming.write(chunk)
                incoming.finish()
                got = incoming.digests.sha256
                if got != sha256:
                    raise UpstreamError(
                        f"{filename!r} from the upstream of {proxy.qualified_name} does not"
                        f" match the sha256 its index gives (expected {sha256}, got {got});"
                        " nothing was kept"
                    )
                self.ctx.blobs.put_file(got, incoming.path)
                stored = StoredFile(proxy.id, filename, project, subdir, got, incoming.digests.size)
        except UpstreamError:
            self.stats.errors += 1
            raise
        with self.ctx.db.write() as conn:
            self.add_file(conn, stored, self.ctx.clock())
        return stored


def _stored_file(row: Any) -> StoredFile:
    return StoredFile(
        repository_id=row.repository_id,
        filename=row.filename,
        project=row.project,
        subdir=row.subdir,
        sha256=Sha256(row.sha256),
        size=row.size,
    )
