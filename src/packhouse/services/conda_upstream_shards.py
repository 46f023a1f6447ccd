"""An upstream's CEP 16 shards read through a conda proxy.

Where the upstream serves `<subdir>/repodata_shards.msgpack.zst`, a proxy without a cooldown
reads it instead of the whole repodata.json for shard clients (rattler, pixi): the index is
cached in `upstream_pages` (row `conda/<subdir>/shards`, the upstream's bytes) for the ttl,
then revalidated with If-None-Match / If-Modified-Since, served stale when the upstream
fails; a shard is fetched the first time its name is asked for, checked against the sha256
the index gives, and kept (row `conda/<subdir>/shard/<hex>`; it never changes). A name only
the upstream has is served the upstream's own shard, under the upstream's digest; the
upstream is asked for nothing about a name a hosted member holds (the confusion rule), but
for names on an `allow_upstream` list.

A cooldown needs every record's time, which the index does not give: a proxy with one reads
repodata.json (services/conda_proxy.py). So does a proxy whose upstream has no shards.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin

from packhouse.auth.redact import redact_url
from packhouse.db.repository_store import Repository
from packhouse.errors import TooLarge, UpstreamError
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
from packhouse.services.conda_records import Line
from packhouse.services.revalidation import STALE_RETRY, Due, kept_due, revalidate, served
from packhouse.services.upstream_cache import StoredPage, UpstreamCache, digest_of, same_origin

log = logging.getLogger("packhouse.proxy")

_KEPT = 64  # shard indexes kept parsed in memory
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

    # -- the index ------------------------------------------------------------------------

    def index(self, proxy: Repository, subdir: str) -> UpstreamShards | None:
        """The upstream's shard index, fetched or revalidated as due; None when the
        upstream serves none (or it cannot be asked and nothing is cached)."""
        key = (proxy.id, subdir)
        kept = self._kept.get(key)
        if kept is None or kept.expires <= time.monotonic():
            with self.cache.one_at_a_time(("conda-shards", proxy.id, subdir)):
                kept = self._kept.get(key)
                if kept is None or kept.expires <= time.monotonic():
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
        cache = self.cache
        stored = cache.read_page(proxy.id, shards_key(subdir))
        if stored is not None and (kept is None or kept.digest != stored.digest):
            kept = self._parsed(proxy, subdir, stored)
        elif stored is not None and kept is not None:
            kept.checked_at = stored.checked_at
        key = ("conda-shards", proxy.id, subdir)
        if kept is not None:
            due = kept_due(cache, proxy, key, kept.checked_at)
            if due is not None:
                return served(kept, due)
        elif cache.offline(proxy):
            return self._none(proxy, subdir, cache.ctx.clock())
        try:
            answer = revalidate(
                cache,
                proxy,
                key,
                shards_key(subdir),
                lambda: self._fetch(proxy, subdir, stored if kept is not None else None),
                kept=kept is not None,
            )
        except (UpstreamError, TooLarge):  # nothing kept: repodata.json is read instead
            return self._none(proxy, subdir, cache.ctx.clock())
        if isinstance(answer, Due):
            assert kept is not None
            return served(kept, answer)
        found = self._parsed(proxy, subdir, answer)
        found.expires = time.monotonic() + cache.ttl(proxy)
        return found

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
        headers: dict[str, str] = {}
        if stored is not None and stored.status == 200:
            if stored.etag:
                headers["If-None-Match"] = stored.etag
            if stored.last_modified:
                headers["If-Modified-Since"] = stored.last_modified
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
        key = shard_key(shards.subdir, hex_digest)
        stored = cache.read_page(proxy.id, key)
        if stored is not None and stored.body and _sha(stored.body) == hex_digest:
            cache.stats.hits += 1
            return stored.body
        if cache.offline(proxy):
            raise UpstreamError(
                f"the shard {hex_digest} is not cached in {proxy.qualified_name}, which is offline"
            )
        with cache.one_at_a_time(("conda-shard", proxy.id, hex_digest)):
            stored = cache.read_page(proxy.id, key)
            if stored is not None and stored.body and _sha(stored.body) == hex_digest:
                return stored.body
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
            now = cache.ctx.clock()
            body = response.body
            page = StoredPage(200, None, None, None, body, None, len(body), hex_digest, now, now)
            cache.write_page(proxy.id, key, page)
            return body

    def records(self, proxy: Repository, shards: UpstreamShards, name: str) -> NameRecords:
        lines, removed = self.lines(proxy, shards, name)
        return NameRecords(
            {x.filename: x.record for x in lines if x.filename.endswith(".tar.bz2")},
            {x.filename: x.record for x in lines if x.filename.endswith(".conda")},
            frozenset(removed),
        )

    def lines(
        self, proxy: Repository, shards: UpstreamShards, name: str
    ) -> tuple[list[Line], list[str]]:
        """A name's checked records, from its upstream shard (none if it has no shard)."""
        digest = shards.index.shards.get(name)
        if digest is None:
            return [], []
        data = self.shard(proxy, shards, digest.hex())
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
        return lines, removed


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ShardedProxySubdir:
    """A proxy without a cooldown whose upstream shards a subdir, as a member of an order:
    names from the upstream's shard index, records from its shards (fetched when asked)."""

    def __init__(self, shards_proxy: ShardsProxy, repo: Repository, shards: UpstreamShards):
        self._proxy = shards_proxy
        self.repo = repo
        self.shards = shards

    @property
    def stamp(self) -> Hashable:
        return (self.shards.digest,)

    @property
    def stale(self) -> bool:
        return self.shards.stale

    def names(self) -> Iterable[str]:
        return self.shards.index.shards.keys()

    def holds(self, name: str) -> bool:
        return name in self.shards.index.shards

    def digest_of(self, name: str) -> bytes:
        return self.shards.index.shards[name]

    def records(self, name: str) -> NameRecords:
        return self._proxy.records(self.repo, self.shards, name)

    def name_stamp(self, name: str) -> Hashable:
        return self.shards.index.shards.get(name)

    def close(self) -> None:
        pass
