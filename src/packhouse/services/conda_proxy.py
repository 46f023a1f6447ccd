"""Conda proxy sources: an upstream channel's subdirs read through their cache.

A subdir's `repodata.json` is fetched on first read (`.zst` asked for first, the plain JSON
when the upstream has no `.zst`), streamed, never held whole: its records are checked one by
one (formats/conda/remote.py) and written, grouped by package name and sorted, to a
*records file* stored as a blob, one line per record (`filename TAB sha256 TAB time TAB
record JSON`). The `upstream_pages` row `conda/<subdir>/repodata` points at that blob and
holds the index of it: each name's byte range and record times, the upstream's `removed`
filenames, and the ETag / Last-Modified of what was fetched. A reader keeps only that index
in memory and reads one name's lines when it needs them.

For `ttl` seconds the cached subdir is served as it is; then it is revalidated with
If-None-Match / If-Modified-Since. When the upstream fails or times out the cached copy is
served marked stale (and the upstream is left alone for `STALE_RETRY` seconds); with nothing
cached the error is raised (502, or 504 for a timeout). Offline proxies serve only what is
cached. One fetch at a time per subdir: concurrent readers wait for it.

Where the upstream serves CEP 16 shards, its `repodata_shards.msgpack.zst` is cached the same
way (row `conda/<subdir>/shards`) and shards are fetched one at a time when asked for,
checked against the sha256 the index gives (rows `conda/<subdir>/shard/<hex>`; a shard's
bytes never change, so it is never asked for again).

Packages are fetched on their first download and checked against the record's sha256
(services/upstream_cache.py).
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urljoin

import msgpack
import zstandard

from packhouse.auth.redact import redact_url
from packhouse.db.repository_store import Repository
from packhouse.errors import ArtifactNotFound, UpstreamError, UpstreamTooLarge
from packhouse.formats.conda import remote
from packhouse.services import blob_claims
from packhouse.services.artifacts import drop_unreferenced
from packhouse.services.conda_order import NameRecords
from packhouse.services.conda_records import (
    INDEX_VERSION,
    Deriver,
    Line,
    decode_lines,
    line_extras,
)

if TYPE_CHECKING:
    from packhouse.services.conda_upstream_extras import Describer
from packhouse.services.revalidation import (
    STALE_RETRY,
    Due,
    kept_due,
    revalidate,
    served,
    still_served,
)
from packhouse.services.sources import Cooldowns, proxies_of
from packhouse.services.upstream_cache import StoredFile, StoredPage, UpstreamCache, same_origin
from packhouse.types import Sha256
from packhouse.upstream.http import UpstreamStream

log = logging.getLogger("packhouse.proxy")

_KEPT = 64  # subdirs whose index is kept in memory
_CHUNK = 1 << 20
MAX_SHARD_BYTES = 64 << 20  # a shard decompressed (conda-forge's largest is a few MB)


def repodata_key(subdir: str) -> str:
    return f"conda/{subdir}/repodata"


def shards_key(subdir: str) -> str:
    return f"conda/{subdir}/shards"


def shard_key(subdir: str, hex_digest: str) -> str:
    return f"conda/{subdir}/shard/{hex_digest}"


# -- the records file ---------------------------------------------------------------------


@dataclass
class RemoteSubdir:
    """One upstream subdir as cached: the index of its records file."""

    proxy_id: int
    subdir: str
    found: bool  # False: the upstream has no such subdir (or nothing is cached, offline)
    digest: str  # of the records file; changes whenever the content does
    blob: Sha256 | None
    spans: dict[str, tuple[int, int, str]]  # name -> (offset, length, digest of its lines)
    times: dict[str, array[int]]  # name -> its records' times (ms, sorted; -1 unknown)
    removed: dict[str, list[str]]
    base_url: str  # absolute URL the packages are fetched from (ends with '/')
    checked_at: datetime
    stale: bool = False
    expires: float = 0.0  # monotonic; until then this answer holds
    all_times: array[int] = field(default_factory=lambda: array("q"))

    def names(self) -> Iterable[str]:
        return self.spans.keys() | self.removed.keys()


def _empty(proxy: Repository, subdir: str, now: datetime, digest: str) -> RemoteSubdir:
    base = subdir_url(proxy, subdir)
    return RemoteSubdir(proxy.id, subdir, False, digest, None, {}, {}, {}, base, now)


def subdir_url(proxy: Repository, subdir: str) -> str:
    assert proxy.upstream_url is not None
    return proxy.upstream_url.rstrip("/") + f"/{subdir}/"


def _load(
    proxy: Repository, subdir: str, stored: StoredPage, index: dict[str, Any]
) -> RemoteSubdir:
    spans: dict[str, tuple[int, int, str]] = {}
    times: dict[str, array[int]] = {}
    everything = array("q")
    for name, (offset, length, stamps, part) in index.get("names", {}).items():
        spans[name] = (offset, length, part)
        times[name] = array("q", stamps)
        everything.extend(stamps)
    base = urljoin(subdir_url(proxy, subdir), index.get("base_url") or "./")
    return RemoteSubdir(
        proxy.id,
        subdir,
        stored.status == 200,
        stored.digest,
        stored.blob_sha256,
        spans,
        times,
        dict(index.get("removed", {})),
        base if base.endswith("/") else base + "/",
        stored.checked_at,
        all_times=array("q", sorted(everything)),
    )


# -- the proxy ------------------------------------------------------------------------------


class CondaProxy:
    def __init__(self, cache: UpstreamCache) -> None:
        self.cache = cache
        self._kept: OrderedDict[tuple[int, str], RemoteSubdir] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def stats(self) -> Any:
        return self.cache.stats

    # -- repodata -------------------------------------------------------------------------

    def subdir(self, proxy: Repository, subdir: str) -> RemoteSubdir:
        """The proxy's cached subdir, fetched or revalidated as due."""
        key = (proxy.id, subdir)
        kept = self._kept.get(key)
        if kept is not None and still_served(self.cache, proxy, kept):
            return kept
        cache = self.cache
        with cache.one_at_a_time(("conda", proxy.id, subdir)):
            kept = self._kept.get(key)
            if kept is not None and still_served(cache, proxy, kept):
                return kept
            stored = cache.read_page(proxy.id, repodata_key(subdir))
            if stored is not None and (kept is None or kept.digest != stored.digest):
                kept = self._from_row(proxy, subdir, stored)
            elif stored is not None and kept is not None:
                kept.checked_at = stored.checked_at  # another process may have revalidated
            fresh = self._fresh(proxy, subdir, kept)
            if fresh is not None:
                cache.stats.hits += 1
                return self._keep(fresh)
            return self._keep(self._refresh(proxy, subdir, stored, kept))

    def _keep(self, found: RemoteSubdir) -> RemoteSubdir:
        with self._lock:
            self._kept[(found.proxy_id, found.subdir)] = found
            self._kept.move_to_end((found.proxy_id, found.subdir))
            while len(self._kept) > _KEPT:
                self._kept.popitem(last=False)
        return found

    def _from_row(self, proxy: Repository, subdir: str, stored: StoredPage) -> RemoteSubdir:
        index = _index_of(stored)
        if stored.status != 200 or stored.blob_sha256 is None:
            return _empty(proxy, subdir, stored.checked_at, stored.digest)
        if not self.cache.ctx.blobs.exists(stored.blob_sha256):  # pruned under us
            return _empty(proxy, subdir, stored.checked_at, "missing")
        return _load(proxy, subdir, stored, index)

    def _fresh(
        self, proxy: Repository, subdir: str, kept: RemoteSubdir | None
    ) -> RemoteSubdir | None:
        cache = self.cache
        if kept is None:
            if cache.offline(proxy):
                found = _empty(proxy, subdir, cache.ctx.clock(), "offline")
                found.expires = time.monotonic() + STALE_RETRY
                return found
            return None
        if kept.digest == "missing":
            return None
        due = kept_due(cache, proxy, ("conda", proxy.id, subdir), kept.checked_at)
        if due is None:
            return None
        return served(kept, due)

    def _refresh(
        self,
        proxy: Repository,
        subdir: str,
        stored: StoredPage | None,
        kept: RemoteSubdir | None,
    ) -> RemoteSubdir:
        cache = self.cache
        usable = kept is not None and kept.digest not in ("missing", "offline")
        index = _index_of(stored) if stored is not None and kept is not None else {}
        answer = revalidate(
            cache,
            proxy,
            ("conda", proxy.id, subdir),
            repodata_key(subdir),
            lambda: self._fetch(proxy, subdir, stored if kept is not None else None, index),
            kept=usable,
        )
        if isinstance(answer, Due):  # a 304, or the upstream failed: what is kept serves
            assert kept is not None
            return served(kept, answer)
        found = self._from_row(proxy, subdir, answer)
        found.expires = time.monotonic() + cache.ttl(proxy)
        old = stored.blob_sha256 if stored is not None else None
        if old is not None and old != answer.blob_sha256:
            # the records file it replaces (readers holding it open keep reading it)
            drop_unreferenced(cache.ctx, [old])
        return found

    def _fetch(
        self, proxy: Repository, subdir: str, stored: StoredPage | None, index: dict[str, Any]
    ) -> StoredPage | None:
        """The new row (written), or None for a 304."""
        cache = self.cache
        base = subdir_url(proxy, subdir)
        variants = ["repodata.json.zst", "repodata.json"]
        if index.get("zst") is False:
            variants = ["repodata.json"]
        no_zst = False
        for variant in variants:
            headers: dict[str, str] = {}
            if stored is not None and stored.status == 200 and index.get("variant") == variant:
                if stored.etag:
                    headers["If-None-Match"] = stored.etag
                if stored.last_modified:
                    headers["If-Modified-Since"] = stored.last_modified
            url = base + variant
            with cache.client.stream(url, headers=headers, auth=proxy.proxy.auth) as response:
                if response.status == 304 and headers:
                    return None
                if response.status in (404, 410):
                    if variant.endswith(".zst"):
                        no_zst = True
                        continue
                    if subdir == "noarch":
                        # every conda channel has noarch (conda refuses one without): the
                        # upstream URL is wrong, which an empty subdir would hide
                        raise UpstreamError(
                            f"the upstream of {proxy.qualified_name} has no noarch subdir"
                            f" ({redact_url(url)} answered {response.status}): a conda"
                            " channel always has one, so its upstream URL is likely wrong"
                        )
                    return self._write_missing(proxy, subdir)
                if response.status != 200:
                    raise UpstreamError(
                        f"the upstream of {proxy.qualified_name} answered {response.status}"
                        f" for {redact_url(url)}"
                    )
                return self._derive(proxy, subdir, variant, response, no_zst)
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_missing(self, proxy: Repository, subdir: str) -> StoredPage:
        now = self.cache.ctx.clock()
        page = StoredPage(404, None, None, None, b"", None, 0, "404", now, now)
        self.cache.write_page(proxy.id, repodata_key(subdir), page)
        return page

    def _derive(
        self,
        proxy: Repository,
        subdir: str,
        variant: str,
        response: UpstreamStream,
        no_zst: bool,
    ) -> StoredPage:
        ctx = self.cache.ctx
        url = redact_url(response.url)
        limit = ctx.settings.upstream_max_index_bytes
        chunks = _capped(response.iter_bytes(_CHUNK), limit, url)
        if variant.endswith(".zst"):
            chunks = _capped(_unzstd(chunks, url), limit, url + " (decompressed)")
        deriver = Deriver(ctx.tmp_dir)
        try:
            path, index, sha256 = deriver.derive(chunks)
        except remote.RemoteError as exc:
            raise UpstreamError(f"{url} of {proxy.qualified_name} is not repodata: {exc}") from None
        if deriver.skipped.count:
            log.warning(
                "%s of %s: %d records left out: %s",
                url,
                proxy.qualified_name,
                deriver.skipped.count,
                "; ".join(deriver.skipped.reasons),
            )
        base_url = deriver.head.info.get("base_url")
        index.update(variant=variant, skipped=deriver.skipped.count, zst=not no_zst)
        if isinstance(base_url, str) and deriver.head.repodata_version >= 2:
            index["base_url"] = base_url
        body = msgpack.packb(index, use_bin_type=True)
        page = fetched_page(response.headers, body, sha256, sha256, ctx.clock())
        try:
            with blob_claims.using(ctx, [sha256]):
                ctx.blobs.put_file(sha256, path)
                self.cache.write_page(proxy.id, repodata_key(subdir), page)
        finally:
            path.unlink(missing_ok=True)
        return page

    # -- reading records ------------------------------------------------------------------

    def read_lines(
        self, found: RemoteSubdir, name: str, handle: BinaryIO | None = None
    ) -> list[Line]:
        span = found.spans.get(name)
        if span is None or found.blob is None:
            return []
        offset, length, _ = span
        if handle is not None:
            handle.seek(offset)
            return decode_lines(handle.read(length))
        try:
            with self.cache.ctx.blobs.open(found.blob, offset, offset + length) as part:
                return decode_lines(part.read(length))
        except ArtifactNotFound:
            raise self._replaced(found) from None

    def open(self, found: RemoteSubdir) -> BinaryIO | None:
        """The whole records file, for reading many names in one go."""
        if found.blob is None:
            return None
        try:
            return self.cache.ctx.blobs.open(found.blob)
        except ArtifactNotFound:
            raise self._replaced(found) from None

    def _replaced(self, found: RemoteSubdir) -> UpstreamError:
        """The records file went away under this reader (another process replaced it with a
        newer one, or the cache was pruned): read the row again next time."""
        found.expires = 0.0
        return UpstreamError(
            f"the cached records of {found.subdir} changed while they were read; try again"
        )

    def fetch_package(
        self, proxy: Repository, subdir: str, base_url: str, name: str, line: Line
    ) -> StoredFile:
        """A package a record lists, from the cache or fetched once from `base_url` (where
        the upstream's index says its packages are) and checked against the sha256."""
        url = base_url + line.filename
        if not same_origin(url, subdir_url(proxy, subdir)):
            log.info("%s fetches %s from %s", proxy.qualified_name, line.filename, redact_url(url))
        return self.cache.fetch_file(
            proxy, url=url, sha256=line.sha256, filename=line.filename, project=name, subdir=subdir
        )


def fetched_page(
    headers: Mapping[str, str], body: bytes, blob: Sha256 | None, digest: str, now: datetime
) -> StoredPage:
    """The row of a document the upstream answered 200 for, with what revalidates it."""
    return StoredPage(
        200,
        headers.get("etag"),
        headers.get("last-modified"),
        headers.get("content-type"),
        body,
        blob,
        len(body),
        digest,
        now,
        now,
    )


def _index_of(stored: StoredPage | None) -> dict[str, Any]:
    if stored is None or not stored.body:
        return {}
    try:
        index = msgpack.unpackb(stored.body, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException):
        return {}
    return index if isinstance(index, dict) and index.get("v") == INDEX_VERSION else {}


def _capped(chunks: Iterable[bytes], limit: int, url: str) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise UpstreamTooLarge(
                f"upstream {url} sent more than the {limit} bytes allowed"
                " (upstream_max_index_bytes); raise it if this upstream is trusted"
            )
        yield chunk


def _unzstd(chunks: Iterable[bytes], url: str) -> Iterator[bytes]:
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    try:
        for chunk in chunks:
            out = decompressor.decompress(chunk)
            if out:
                yield out
    except zstandard.ZstdError as exc:
        raise UpstreamError(f"upstream {url} is not valid zstd: {exc}") from None


@dataclass(frozen=True)
class ProxiedPackage:
    """A package a proxy's cached subdir lists: `fetch` returns its stored copy (fetched
    once from the upstream and checked against the record's sha256)."""

    proxy: Repository
    fetch: Callable[[], StoredFile]


# -- a proxy as a source of an order ----------------------------------------------------------


class ProxySubdir:
    """A proxy's cached subdir as a member of an order (services/conda_order.py), its
    records passed through the cooldowns of the order. `close` it after use."""

    def __init__(
        self,
        proxy: CondaProxy,
        repo: Repository,
        found: RemoteSubdir,
        cooldowns: Cooldowns,
        now: datetime,
    ) -> None:
        self._proxy = proxy
        self.repo = repo
        self.found = found
        self._cooldowns = cooldowns
        self._now = now
        self._handle: BinaryIO | None = None
        self._cutoffs: dict[str, int | None] = {}
        self._last: tuple[str, list[Line]] | None = None  # the name read last, for extras
        # what the upstream says beyond the records (services/conda_upstream_extras.py)
        self.describe: Describer | None = None

    @property
    def stamp(self) -> Hashable:
        """The records file, and how many of its records each cooldown lets through."""
        counts = tuple(
            bisect_right(self.found.all_times, int(c.timestamp() * 1000))
            for rule in self._cooldowns.rules
            if (c := rule.cutoff(self._now)) is not None
        )
        return (self.found.digest, counts)

    @property
    def stale(self) -> bool:
        return self.found.stale

    @property
    def cooling(self) -> bool:
        """A cooldown applies: what it lets through changes with the clock."""
        return self._cooldowns.active

    @property
    def expires(self) -> float:
        return self.found.expires

    def names(self) -> Iterable[str]:
        return self.found.names()

    def holds(self, name: str) -> bool:
        return name in self.found.spans

    def cutoff_ms(self, name: str) -> int | None:
        if name not in self._cutoffs:
            cutoff = self._cooldowns.cutoff(name, self._now)
            self._cutoffs[name] = None if cutoff is None else int(cutoff.timestamp() * 1000)
        return self._cutoffs[name]

    def admits(self, name: str, time_ms: int) -> bool:
        cutoff = self.cutoff_ms(name)
        return cutoff is None or 0 <= time_ms <= cutoff

    def lines(self, name: str) -> list[Line]:
        """The name's records a reader may see (the cooldowns applied)."""
        if self._last is not None and self._last[0] == name:
            return self._last[1]
        if self._handle is None and self.found.blob is not None:
            self._handle = self._proxy.open(self.found)
        lines = [
            line
            for line in self._proxy.read_lines(self.found, name, self._handle)
            if self.admits(name, line.time_ms)
        ]
        self._last = (name, lines)
        return lines

    def records(self, name: str) -> NameRecords:
        lines = self.lines(name) if name in self.found.spans else []
        packages = {x.filename: x.record for x in lines if x.filename.endswith(".tar.bz2")}
        packages_conda = {x.filename: x.record for x in lines if x.filename.endswith(".conda")}
        return NameRecords(packages, packages_conda, frozenset(self.found.removed.get(name, ())))

    def name_stamp(self, name: str) -> Hashable:
        times = self.found.times.get(name)
        cutoff = self.cutoff_ms(name)
        if times is None:
            return (self.found.digest, 0)
        admitted = len(times) if cutoff is None else bisect_right(times, cutoff)
        span = self.found.spans.get(name)
        return (span[2] if span else self.found.digest, admitted)

    def extras(self, name: str) -> Mapping[str, bytes]:
        if name not in self.found.spans:
            return {}
        derived = line_extras(self.lines(name))
        return self.describe(name).apply(derived) if self.describe is not None else derived

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self.describe is not None:
            self.describe.close()


def proxy_sources(
    proxy: CondaProxy,
    order: Sequence[Repository],
    subdir: str,
    now: datetime,
    wanted: Callable[[Repository], bool] = lambda _: True,
) -> list[ProxySubdir]:
    """The order's proxies as sources for `subdir` (fetching or revalidating as due)."""
    sources = []
    for member in proxies_of(order):
        if wanted(member):
            found = proxy.subdir(member, subdir)
            sources.append(ProxySubdir(proxy, member, found, Cooldowns.of(order, member), now))
    return sources
