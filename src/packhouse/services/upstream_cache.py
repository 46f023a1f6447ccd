"""What proxies keep of their upstreams: index documents (`upstream_pages`) and fetched files
(`upstream_files`, stored as blobs by sha256), and the one-fetch-at-a-time locks and counters
both formats' proxies share. One fetch at a time holds across the processes of a server too:
a fetch takes a lease in the database (`upstream_leases`), and the others wait for it and
then read what it stored.

None of this is journalled: a cache fill is not a change anyone made, and it must not move
the journal serial (that would throw away every cached page of every repository).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, insert, select, update

from packhouse.auth.redact import redact_url
from packhouse.db import lease_store
from packhouse.db.repository_store import Repository
from packhouse.db.schema import upstream_files, upstream_pages
from packhouse.errors import NotFound, PackhouseError, UpstreamError
from packhouse.services.context import Context
from packhouse.services.upstream_download import Download as Download  # re-exported
from packhouse.storage.base import IncomingFile
from packhouse.types import Sha256
from packhouse.units import aware
from packhouse.upstream.http import UpstreamClient
from packhouse.upstream.netpolicy import NetworkPolicy

log = logging.getLogger("packhouse.proxy")

USE_RESOLUTION = 3600.0  # seconds: how fresh a cached file's last_used_at is kept
# Files up to this size are fetched whole and checked before the first byte is sent on;
# bigger ones (and those of unknown size) are sent on as they arrive.
CHECK_BEFORE_SENDING = 8 * 1024 * 1024
# An upstream lease outlives a fetch only when its process died; then it lapses after this.
LEASE_SECONDS = 3600
LEASE_POLL = 0.1  # seconds between looks at a lease another process holds


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
        self._holder = uuid.uuid4().hex  # this process's name on its upstream leases
        # told of each file kept that came without a sha256 (PyPI pages then show ours)
        self.kept_listeners: list[Callable[[StoredFile], None]] = []

    def close(self) -> None:
        self.client.close()

    def ttl(self, proxy: Repository) -> int:
        return self.ctx.settings.upstream_ttl if proxy.proxy.ttl is None else proxy.proxy.ttl

    def offline(self, proxy: Repository) -> bool:
        return self.ctx.settings.upstream_offline or proxy.proxy.offline

    @contextmanager
    def one_at_a_time(self, key: tuple[object, ...]) -> Iterator[None]:
        """Hold the lock of `key`; a second caller waits and then finds the cache filled."""
        release = self._hold(key)
        try:
            yield
        finally:
            release()

    def _hold(self, key: tuple[object, ...]) -> Callable[[], None]:
        """Take the lock of `key` (waiting for whoever holds it), in this process and then
        among the server's processes; returns its release, which may be called from another
        thread and more than once."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        lock.acquire()
        try:
            lease = self._lease(key)
        except BaseException:
            lock.release()
            raise
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            if lease is not None:
                self._give_up(lease)
            # forgotten once released; a caller still waiting on it, or one who makes a new
            # lock, re-checks the cache first and finds what this one stored
            with self._guard:
                if self._locks.get(key) is lock:
                    del self._locks[key]
            lock.release()

        return release

    def _lease(self, key: tuple[object, ...]) -> str | None:
        """The lease of `key` among the processes sharing the database, waited for while
        another process fetches the same thing (then the cache holds what it fetched). A
        holder that is slow or gone is waited for `upstream_timeout` seconds at most, and
        then this process fetches too; None then, or when the database cannot be asked."""
        name = hashlib.sha256(repr(key).encode()).hexdigest()
        deadline = time.monotonic() + self.ctx.settings.upstream_timeout
        try:
            while True:
                with self.ctx.db.write() as conn:
                    now = datetime.now(UTC)
                    until = now + timedelta(seconds=LEASE_SECONDS)
                    if lease_store.take(conn, name, self._holder, now, until):
                        return name
                if time.monotonic() > deadline:
                    log.warning("an upstream fetch by another process is taking long; fetching")
                    return None
                time.sleep(LEASE_POLL)
        except PackhouseError as exc:
            log.warning("cannot take the upstream lease (fetching anyway): %s", exc.message)
            return None

    def _give_up(self, name: str) -> None:
        try:
            with self.ctx.db.write() as conn:
                lease_store.give_up(conn, name, self._holder)
        except PackhouseError as exc:  # it expires by itself
            log.warning("cannot give up the upstream lease: %s", exc.message)

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
        values = _page_values(page)
        with self.ctx.db.write() as conn:
            where = (upstream_pages.c.repository_id == repository_id) & (
                upstream_pages.c.key == key
            )
            if conn.execute(update(upstream_pages).where(where).values(**values)).rowcount == 0:
                conn.execute(
                    insert(upstream_pages).values(repository_id=repository_id, key=key, **values)
                )

    def write_pages(self, repository_id: int, pages: Iterable[tuple[str, StoredPage]]) -> None:
        """Many documents by key in one transaction, each replacing any row of its key (a
        conda proxy's prefetched shards): one DELETE and one executemany INSERT per 500."""
        rows = [
            {"repository_id": repository_id, "key": key, **_page_values(page)}
            for key, page in pages
        ]
        pages_c = upstream_pages.c
        with self.ctx.db.write() as conn:
            for start in range(0, len(rows), 500):
                chunk = rows[start : start + 500]
                conn.execute(
                    delete(upstream_pages).where(
                        pages_c.repository_id == repository_id,
                        pages_c.key.in_([r["key"] for r in chunk]),
                    )
                )
                conn.execute(insert(upstream_pages), chunk)

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

    def project_files(self, repository_id: int, project: str) -> dict[str, StoredFile]:
        """The files a proxy keeps of a project, by filename."""
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(upstream_files).where(
                    upstream_files.c.repository_id == repository_id,
                    upstream_files.c.project == project,
                )
            )
            return {r.filename: _stored_file(r) for r in rows}

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
        sha256: str | None,
        filename: str,
        project: str,
        subdir: str | None = None,
        md5: str | None = None,
    ) -> StoredFile:
        """The file, from the cache or fetched once from the upstream (concurrent requests
        for it wait for that one fetch), checked against the sha256 the upstream's index
        gave before it is kept (without one: its md5 if given; the file kept under that
        name, whatever its sha256, is then the file). A mismatch keeps nothing and raises
        UpstreamError."""
        started = self.start_file(
            proxy, url=url, sha256=sha256, filename=filename, project=project, subdir=subdir,
            md5=md5,
        )  # fmt: skip
        return started if isinstance(started, StoredFile) else started.finish()

    def start_file(
        self,
        proxy: Repository,
        *,
        url: str,
        sha256: str | None,
        filename: str,
        project: str,
        subdir: str | None = None,
        md5: str | None = None,
    ) -> StoredFile | Download:
        """The cached file, or a Download just started (the upstream answered 200), whose
        bytes the caller passes on as they arrive (small files are fetched and checked
        first, and come back stored). Concurrent callers for the same file wait until that
        download is over and then find it cached."""
        cached = self.cached_file(proxy, filename, sha256)
        if cached is not None:
            return cached
        if self.offline(proxy):
            raise NotFound(
                f"{filename!r} is not cached in {proxy.qualified_name}, which is offline"
            )
        release = self._hold(("file", proxy.id, filename))
        try:
            cached = self.cached_file(proxy, filename, sha256)
            if cached is not None:
                release()
                return cached
            self.stats.file_misses += 1
            expected = StoredFile(proxy.id, filename, project, subdir, Sha256(sha256 or ""), 0)
            download = self._open_download(proxy, url, expected, md5, release)
        except BaseException:
            release()
            raise
        if download.size is None or download.size > CHECK_BEFORE_SENDING:
            return download
        # small enough to check before the first byte goes out, so a mismatch is a clean 502
        return download.finish()

    def cached_file(
        self, proxy: Repository, filename: str, sha256: str | None
    ) -> StoredFile | None:
        """The kept file of that name, if it has this sha256 (None: whatever it has)."""
        found = self.file_in(proxy.id, filename)
        if found is not None and sha256 in (None, found.sha256) and self.still_stored(found):
            return found
        return None

    def file_kept(self, file: StoredFile) -> None:
        for listener in self.kept_listeners:
            listener(file)

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

    def _open_download(
        self,
        proxy: Repository,
        url: str,
        expected: StoredFile,
        md5: str | None,
        release: Callable[[], None],
    ) -> Download:
        assert proxy.upstream_url is not None
        auth = proxy.proxy.auth if same_origin(url, proxy.upstream_url) else None
        limit = self.ctx.settings.upstream_max_file_bytes
        label = f"upstream file {expected.filename!r}"
        with ExitStack() as stack:
            incoming = stack.enter_context(IncomingFile(self.ctx.tmp_dir, limit, label))
            try:
                response = stack.enter_context(self.client.stream(url, auth=auth))
            except UpstreamError:
                self.stats.errors += 1
                raise
            if response.status != 200:
                self.stats.errors += 1
                raise UpstreamError(
                    f"the upstream of {proxy.qualified_name} answered {response.status}"
                    f" for {redact_url(url)}"
                )
            resources = stack.pop_all()  # the Download closes them
        return Download(self, proxy, expected, md5, response, incoming, resources, release)


def _page_values(page: StoredPage) -> dict[str, Any]:
    return {
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


def _stored_file(row: Any) -> StoredFile:
    return StoredFile(
        repository_id=row.repository_id,
        filename=row.filename,
        project=row.project,
        subdir=row.subdir,
        sha256=Sha256(row.sha256),
        size=row.size,
    )
