"""An upstream's CEP 16 shards read through a conda proxy.

Where the upstream serves `<subdir>/repodata_shards.msgpack.zst`, a proxy reads it instead of
the whole repodata.json for shard clients (rattler, pixi): the index is cached in
`upstream_pages` (row `conda/<subdir>/shards`, the upstream's bytes) for the ttl, then
revalidated with If-None-Match / If-Modified-Since, served stale when the upstream fails; a
shard is fetched the first time its name is asked for, checked against the sha256 the index
gives, and kept (row `conda/<subdir>/shard/<hex>`; it never changes). The upstream is asked
for nothing about a name a hosted member holds (the confusion rule), but for names on an
`allow_upstream` list.

Without a cooldown a name only the upstream has is served the upstream's own shard, under
the upstream's digest, and no shard is fetched to build the index. A cooldown goes by the
times of the records inside each shard: a name's records are filtered, and a name whose
every record is held back is left out of the index, so the index needs every shard of the
names the proxy answers for (fetched PREFETCH at a time the first time, then only the shards
whose digest changed; their records' times are kept in memory, a few integers a record).
A proxy whose upstream has no shards reads repodata.json (services/conda_proxy.py).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin

from packhouse.auth.redact import redact_url
from packhouse.db.repository_store import Repository
from packhouse.errors import UpstreamError
from packhouse.formats.conda import remote
from packhouse.formats.conda.remote import RemoteShardsIndex, Skipped
from packhouse.services.conda_order import NameRecords
from packhouse.services.conda_proxy import (
    MAX_SHARD_BYTES,
    fetched_page,
    shard_key,
    shards_key,
    subdir_url,
)
from packhouse.services.conda_records import Line, line_extras
from packhouse.services.revalidation import STALE_RETRY, current, still_served, validators
from packhouse.services.sources import Cooldowns
from packhouse.services.upstream_cache import StoredPage, UpstreamCache, digest_of, same_origin

log = logging.getLogger("packhouse.proxy")

_KEPT = 64  # shard indexes kept parsed in memory
PREFETCH = 8  # shards fetched at once when a cooldown needs all of them
RECENT_BYTES = 64 << 20  # shard bytes kept in memory (compressed; conda-forge's are ~1 KB)
INDEX_FILE = "repodata_shards.msgpack.zst"


@dataclass
class UpstreamShards:
    """An upstream subdir's shard index as cached (`found` False: it serves none)."""

    proxy_id: int
    subdir: str
    found: bool
    index: RemoteShardsIndex
    digest: str
    shards_url: str  # absolute, ends with '/'
    base_url: str  # where its packages are, absolute, ends with '/'
    checked_at: datetime
    stale: bool = False
    expires: float = 0.0


def _absolute(base: str, relative: str) -> str:
    url = urljoin(base, relative or "./")
    return url if url.endswith("/") else url + "/"


class ShardsProxy:
    def __init__(self, cache: UpstreamCache) -> None:
        self.cache = cache
        self._kept: OrderedDict[tuple[int, str], UpstreamShards] = OrderedDict()
        self._lock = threading.Lock()
        self._recent: OrderedDict[tuple[int, str], bytes] = OrderedDict()  # shard bytes
        self._recent_bytes = 0
        # (proxy id, subdir) -> (index digest, {shard digest: summary})
        self._summary: dict[tuple[int, str], tuple[str, dict[bytes, ShardSummary]]] = {}

    # -- the index ------------------------------------------------------------------------

    def index(self, proxy: Repository, subdir: str) -> UpstreamShards | None:
        """The upstream's shard index, fetched or revalidated as due; None when the
        upstream serves none (or it cannot be asked and nothing is cached)."""
        key = (proxy.id, subdir)
        kept = self._kept.get(key)
        if kept is None or not still_served(self.cache, proxy, kept):
            with self.cache.one_at_a_time(("conda-shards", proxy.id, subdir)):
                kept = self._kept.get(key)
                if kept is None or not still_served(self.cache, proxy, kept):
                    kept = self._current(proxy, subdir, kept)
                    with self._lock:
                        self._kept[key] = kept
                        self._kept.move_to_end(key)
                        while len(self._kept) > _KEPT:
                            self._kept.popitem(last=False)
        return kept if kept.found else None

    def _current(
        self, proxy: Repository, subdir: str, kept: UpstreamShards | None
    ) -> UpstreamShards:
        return current(
            self.cache,
            proxy,
            ("conda-shards", proxy.id, subdir),
            shards_key(subdir),
            kept,
            lambda stored: self._parsed(proxy, subdir, stored),
            lambda stored: self._fetch(proxy, subdir, stored),
            # nothing kept: repodata.json is read instead
            lambda: self._none(proxy, subdir, self.cache.ctx.clock()),
        )

    def _none(self, proxy: Repository, subdir: str, now: datetime) -> UpstreamShards:
        base = subdir_url(proxy, subdir)
        empty = RemoteShardsIndex("./", "./", {})
        found = UpstreamShards(proxy.id, subdir, False, empty, "none", base, base, now)
        found.expires = time.monotonic() + STALE_RETRY
        return found

    def _parsed(self, proxy: Repository, subdir: str, stored: StoredPage) -> UpstreamShards:
        base = subdir_url(proxy, subdir)
        if stored.status != 200 or not stored.body:
            empty = RemoteShardsIndex("./", "./", {})
            return UpstreamShards(
                proxy.id, subdir, False, empty, stored.digest, base, base, stored.checked_at
            )
        limit = self.cache.ctx.settings.upstream_max_page_bytes
        try:
            index = remote.parse_shards_index(stored.body, limit)
        except remote.RemoteError:
            index = RemoteShardsIndex("./", "./", {})
        index_url = base + INDEX_FILE
        return UpstreamShards(
            proxy.id,
            subdir,
            bool(index.shards),
            index,
            stored.digest,
            _absolute(index_url, index.shards_base_url),
            _absolute(index_url, index.base_url),
            stored.checked_at,
        )

    def _fetch(
        self, proxy: Repository, subdir: str, stored: StoredPage | None
    ) -> StoredPage | None:
        cache = self.cache
        url = subdir_url(proxy, subdir) + INDEX_FILE
        headers = validators(stored)
        limit = cache.ctx.settings.upstream_max_page_bytes
        response = cache.client.get(url, headers=headers, auth=proxy.proxy.auth, max_bytes=limit)
        now = cache.ctx.clock()
        if response.status == 304 and headers:
            return None
        if response.status in (404, 410):
            page = StoredPage(404, None, None, None, b"", None, 0, "404", now, now)
        elif response.status == 200:
            try:
                remote.parse_shards_index(response.body, limit)
            except remote.RemoteError as exc:
                raise UpstreamError(
                    f"{redact_url(url)} of {proxy.qualified_name} is not a shard index: {exc}"
                ) from None
            body = response.body
            page = fetched_page(response.headers, body, None, digest_of(body), now)
        else:
            raise UpstreamError(
                f"the upstream of {proxy.qualified_name} answered {response.status} for"
                f" {redact_url(url)}"
            )
        cache.write_page(proxy.id, shards_key(subdir), page)
        return page

    # -- shards ---------------------------------------------------------------------------

    def shard(self, proxy: Repository, shards: UpstreamShards, hex_digest: str) -> bytes:
        """The upstream's shard with this digest: cached, or fetched once and checked."""
        cache = self.cache
        stored = self._cached(proxy, shards, hex_digest)
        if stored is not None:
            cache.stats.hits += 1
            return stored
        if cache.offline(proxy):
            raise UpstreamError(
                f"the shard {hex_digest} is not cached in {proxy.qualified_name}, which is offline"
            )
        with cache.one_at_a_time(("conda-shard", proxy.id, hex_digest)):
            stored = self._cached(proxy, shards, hex_digest)
            if stored is not None:
                return stored
            body = self._download(proxy, shards, hex_digest)
            self._store(proxy, shards, hex_digest, body)
            return body

    def _cached(self, proxy: Repository, shards: UpstreamShards, hex_digest: str) -> bytes | None:
        recent = self._recent.get((proxy.id, hex_digest))
        if recent is not None:
            return recent
        stored = self.cache.read_page(proxy.id, shard_key(shards.subdir, hex_digest))
        if stored is not None and stored.body and _sha(stored.body) == hex_digest:
            self._remember(proxy, hex_digest, stored.body)
            return stored.body
        return None

    def _remember(self, proxy: Repository, hex_digest: str, body: bytes) -> None:
        """Keep a shard's bytes a while (RECENT_BYTES in all): the index build under a
        cooldown reads every shard it just fetched again."""
        with self._lock:
            self._recent[(proxy.id, hex_digest)] = body
            self._recent_bytes += len(body)
            while self._recent_bytes > RECENT_BYTES and self._recent:
                _, old = self._recent.popitem(last=False)
                self._recent_bytes -= len(old)

    def _download(self, proxy: Repository, shards: UpstreamShards, hex_digest: str) -> bytes:
        """The shard's bytes from the upstream, checked against the digest (network only:
        several run at once in `prefetch`)."""
        cache = self.cache
        url = f"{shards.shards_url}{hex_digest}.msgpack.zst"
        auth = proxy.proxy.auth if same_origin(url, subdir_url(proxy, shards.subdir)) else None
        limit = cache.ctx.settings.upstream_max_page_bytes
        try:
            response = cache.client.get(url, auth=auth, max_bytes=limit)
            if response.status != 200:
                raise UpstreamError(
                    f"the upstream of {proxy.qualified_name} answered {response.status}"
                    f" for {redact_url(url)}"
                )
            if _sha(response.body) != hex_digest:
                raise UpstreamError(
                    f"the shard {redact_url(url)} of {proxy.qualified_name} does not match"
                    " the sha256 its index gives; nothing was kept"
                )
        except UpstreamError:
            cache.stats.errors += 1
            raise
        cache.stats.misses += 1
        return response.body

    def _store(
        self, proxy: Repository, shards: UpstreamShards, hex_digest: str, body: bytes
    ) -> None:
        now = self.cache.ctx.clock()
        page = StoredPage(200, None, None, None, body, None, len(body), hex_digest, now, now)
        self.cache.write_page(proxy.id, shard_key(shards.subdir, hex_digest), page)

    def lines(
        self, proxy: Repository, shards: UpstreamShards, name: str
    ) -> tuple[list[Line], list[str]]:
        """A name's checked records, from its upstream shard (none if it has no shard)."""
        digest = shards.index.shards.get(name)
        if digest is None:
            return [], []
        return self._parse(proxy, shards, name, self.shard(proxy, shards, digest.hex()))

    def _parse(
        self, proxy: Repository, shards: UpstreamShards, name: str, data: bytes
    ) -> tuple[list[Line], list[str]]:
        """A name's shard bytes as checked records; its summary is remembered."""
        digest = shards.index.shards[name]
        skipped = Skipped()
        try:
            found, removed = remote.parse_shard(data, name, MAX_SHARD_BYTES, skipped)
        except remote.RemoteError as exc:
            raise UpstreamError(f"the upstream shard of {name!r} cannot be read: {exc}") from None
        if skipped.count:
            log.warning(
                "shard of %r from %s: %d records left out: %s",
                name,
                proxy.qualified_name,
                skipped.count,
                "; ".join(skipped.reasons),
            )
        lines = [Line(r.filename, r.sha256, r.time_ms, r.record) for r in found]
        times = array("q", sorted(x.time_ms for x in lines))
        summary = ShardSummary(times, skipped.count)
        with self._lock:
            self._summaries(proxy, shards)[digest] = summary
        return lines, removed

    # -- what a cooldown needs ------------------------------------------------------------

    def _summaries(self, proxy: Repository, shards: UpstreamShards) -> dict[bytes, ShardSummary]:
        """The summaries of one (proxy, subdir)'s shards by digest: kept across index
        changes (a shard's bytes never change), dropped for digests no index has (call
        with the lock held)."""
        key = (proxy.id, shards.subdir)
        kept = self._summary.get(key)
        if kept is None or kept[0] != shards.digest:
            held = kept[1] if kept is not None else {}
            live = set(shards.index.shards.values())
            kept = (shards.digest, {d: s for d, s in held.items() if d in live})
            self._summary[key] = kept
        return kept[1]

    def summaries(self, proxy: Repository, shards: UpstreamShards) -> list[ShardSummary]:
        """The summaries of the shards of the index read so far."""
        with self._lock:
            return list(self._summaries(proxy, shards).values())

    def summary(self, proxy: Repository, shards: UpstreamShards, name: str) -> ShardSummary:
        digest = shards.index.shards[name]
        with self._lock:
            found = self._summaries(proxy, shards).get(digest)
        if found is not None:
            return found
        lines, _ = self.lines(proxy, shards, name)
        with self._lock:
            found = self._summaries(proxy, shards).get(digest)
        return found or ShardSummary(array("q", sorted(x.time_ms for x in lines)), 0)

    def prefetch(self, proxy: Repository, shards: UpstreamShards, names: Iterable[str]) -> None:
        """Read the shards of `names` whose summary is not known yet: the cached ones from
        the cache, the others fetched PREFETCH at a time (only the downloads run at once;
        the cache is read and written from this thread)."""
        with self._lock:
            known = set(self._summaries(proxy, shards))
        wanted = [n for n in names if n in shards.index.shards]
        wanted = [n for n in wanted if shards.index.shards[n] not in known]
        prefix = shard_key(shards.subdir, "")
        cached = self.cache.page_names([proxy.id], prefix)  # one query for all
        missing = []
        for name in wanted:
            if shards.index.shards[name].hex() in cached:
                self.summary(proxy, shards, name)
            else:
                missing.append(name)
        if len(missing) < 2 or self.cache.offline(proxy):
            return  # read one by one when asked
        with self.cache.one_at_a_time(("conda-shards-prefetch", proxy.id, shards.subdir)):
            hexes = [shards.index.shards[n].hex() for n in missing]
            with ThreadPoolExecutor(PREFETCH, thread_name_prefix="packhouse-shards") as pool:
                bodies = list(pool.map(lambda h: self._download(proxy, shards, h), hexes))
            now = self.cache.ctx.clock()
            pages = [
                (prefix + h, StoredPage(200, None, None, None, b, None, len(b), h, now, now))
                for h, b in zip(hexes, bodies, strict=True)
            ]
            self.cache.write_pages(proxy.id, pages)  # one transaction
            for h, b in zip(hexes, bodies, strict=True):
                self._remember(proxy, h, b)
        for name, body in zip(missing, bodies, strict=True):
            self._parse(proxy, shards, name, body)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ShardSummary:
    """What a cooldown needs of an upstream shard: its records' times (ms, sorted; -1
    unknown), and how many records its checks left out."""

    times: array[int]
    skipped: int


class ShardedProxySubdir:
    """A proxy whose upstream shards a subdir, as a member of an order: names from the
    upstream's shard index, records from its shards (fetched when asked), passed through
    the order's cooldowns. Under a cooldown a name whose every record is held back has no
    records, so it is absent from the order's shard index as from its repodata."""

    def __init__(
        self,
        shards_proxy: ShardsProxy,
        repo: Repository,
        shards: UpstreamShards,
        cooldowns: Cooldowns,
        now: datetime,
    ) -> None:
        self._proxy = shards_proxy
        self.repo = repo
        self.shards = shards
        self._cooldowns = cooldowns
        self._now = now
        self._cutoffs: dict[str, int | None] = {}
        self._last: tuple[str, list[Line], list[str]] | None = None

    @property
    def cooling(self) -> bool:
        return self._cooldowns.active

    @property
    def stamp(self) -> Hashable:
        """The index, and (under a cooldown) how many records of the shards read so far
        each cooldown lets through."""
        if not self.cooling:
            return (self.shards.digest,)
        summaries = self._proxy.summaries(self.repo, self.shards)
        counts = []
        for rule in self._cooldowns.rules:
            cutoff = rule.cutoff(self._now)
            if cutoff is None:
                continue
            ms = int(cutoff.timestamp() * 1000)
            counts.append(sum(bisect_right(s.times, ms) for s in summaries))
        return (self.shards.digest, tuple(counts))

    @property
    def stale(self) -> bool:
        return self.shards.stale

    @property
    def expires(self) -> float:
        return self.shards.expires

    def names(self) -> Iterable[str]:
        return self.shards.index.shards.keys()

    def holds(self, name: str) -> bool:
        return name in self.shards.index.shards

    def digest_of(self, name: str) -> bytes:
        return self.shards.index.shards[name]

    def whole(self, name: str) -> bool:
        """Whether the upstream's own shard of `name` may be served as it is: no cooldown
        applies (its shard is then not even fetched for the index)."""
        return not self.cooling

    def _cutoff_ms(self, name: str) -> int | None:
        if name not in self._cutoffs:
            cutoff = self._cooldowns.cutoff(name, self._now)
            self._cutoffs[name] = None if cutoff is None else int(cutoff.timestamp() * 1000)
        return self._cutoffs[name]

    def lines(self, name: str) -> tuple[list[Line], list[str]]:
        """The name's records a reader may see (the cooldowns applied), and its removed."""
        if self._last is not None and self._last[0] == name:
            return self._last[1], self._last[2]
        lines, removed = self._proxy.lines(self.repo, self.shards, name)
        cutoff = self._cutoff_ms(name)
        if cutoff is not None:
            lines = [x for x in lines if 0 <= x.time_ms <= cutoff]
        self._last = (name, lines, removed)
        return lines, removed

    def records(self, name: str) -> NameRecords:
        lines, removed = self.lines(name)
        return NameRecords(
            {x.filename: x.record for x in lines if x.filename.endswith(".tar.bz2")},
            {x.filename: x.record for x in lines if x.filename.endswith(".conda")},
            frozenset(removed),
        )

    def extras(self, name: str) -> Mapping[str, bytes]:
        return line_extras(self.lines(name)[0])

    def name_stamp(self, name: str) -> Hashable:
        digest = self.shards.index.shards.get(name)
        cutoff = self._cutoff_ms(name) if digest is not None else None
        if cutoff is None:
            return digest
        summary = self._proxy.summary(self.repo, self.shards, name)
        return (digest, bisect_right(summary.times, cutoff))

    def prefetch(self, names: Iterable[str]) -> None:
        """Fetch the shards of `names` not cached yet, a few at a time (a cooldown needs
        every record's time to know which names it leaves)."""
        self._proxy.prefetch(self.repo, self.shards, names)

    def close(self) -> None:
        pass
