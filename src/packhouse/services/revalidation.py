"""The one freshness rule of every cached upstream index document: a PyPI project page, a
conda subdir's repodata, a conda shard index.

A document is served from the cache while it is younger than the proxy's `upstream_ttl` (or
always, when the proxy is offline). Past that it is revalidated: the upstream is asked with
the document's validators, and a 304 only renews it. When the upstream fails (an error, a
timeout, an oversized answer), what is kept is served marked stale and the upstream is left
alone for `STALE_RETRY` seconds, so a down upstream costs one timeout, not one per request;
with nothing kept, the upstream's error is the answer.

The callers keep what differs: what a document parses into, and what "nothing kept" means.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from packhouse.db.repository_store import Repository
from packhouse.errors import TooLarge, UpstreamError
from packhouse.services.upstream_cache import StoredPage, UpstreamCache

log = logging.getLogger("packhouse.proxy")

STALE_RETRY = 30.0  # seconds a failed upstream is left alone while the cached copy is served


@dataclass(frozen=True)
class Due:
    """How a kept document is served: stale or not, and until when (`time.monotonic()`) that
    holds before the cache is to be looked at again."""

    stale: bool
    expires: float
    checked_at: datetime | None = None  # set when the upstream just confirmed it (a 304)


class Kept(Protocol):
    """What a caller keeps of a document in memory (a parsed subdir, a shard index)."""

    checked_at: datetime
    stale: bool
    expires: float


K = TypeVar("K", bound=Kept)


class Digested(Kept, Protocol):
    """A kept document that knows the digest of the row it was read from."""

    digest: str


D = TypeVar("D", bound=Digested)


def served(kept: K, due: Due) -> K:
    """`kept`, marked as `due` says it is served (and checked again, after a 304)."""
    if due.checked_at is not None:
        kept.checked_at = due.checked_at
    kept.stale, kept.expires = due.stale, due.expires
    return kept


def still_served(cache: UpstreamCache, proxy: Repository, kept: Kept) -> bool:
    """Whether `kept` is served as it was last marked, without looking at the cache row:
    until its `expires`, and, when it was fresh, only while it is younger than the proxy's
    ttl of now (so a ttl shortened by `repo update` counts at once, not when the old one
    runs out)."""
    if kept.expires <= time.monotonic():
        return False
    if kept.stale or cache.offline(proxy):
        return True
    return (cache.ctx.clock() - kept.checked_at).total_seconds() < cache.ttl(proxy)


def validators(stored: StoredPage | None) -> dict[str, str]:
    """The conditional-request headers that revalidate a kept 200 answer."""
    headers: dict[str, str] = {}
    if stored is not None and stored.status == 200:
        if stored.etag:
            headers["If-None-Match"] = stored.etag
        if stored.last_modified:
            headers["If-Modified-Since"] = stored.last_modified
    return headers


def kept_due(
    cache: UpstreamCache, proxy: Repository, key: tuple[object, ...], checked_at: datetime
) -> Due | None:
    """How a document last checked at `checked_at` may be served without asking the
    upstream, or None when the upstream is to be asked. `key` names the document (its
    backoff after a failure)."""
    ttl = cache.ttl(proxy)
    age = (cache.ctx.clock() - checked_at).total_seconds()
    now = time.monotonic()
    if cache.offline(proxy) or age < ttl:
        return Due(False, now + max(ttl - age, 0))
    until = cache.backoff.get(key, 0.0)
    if until > now:
        return Due(True, until)
    return None


def revalidate(
    cache: UpstreamCache,
    proxy: Repository,
    key: tuple[object, ...],
    page_key: str,
    fetch: Callable[[], StoredPage | None],
    kept: bool,
) -> StoredPage | Due:
    """Ask the upstream through `fetch`, which returns the new document (already written) or
    None for a 304. The answer is the new document, or how the kept one is served: fresh again
    after a 304, stale after a failure. With nothing `kept`, a failure is raised."""
    checked_at = cache.ctx.clock()
    try:
        fetched = fetch()
    except (UpstreamError, TooLarge) as error:
        cache.stats.errors += 1
        log.warning("upstream of %s failed: %s", proxy.qualified_name, error)
        if not kept:
            raise
        until = time.monotonic() + STALE_RETRY
        cache.backoff[key] = until
        cache.stats.stale += 1
        return Due(True, until)
    cache.backoff.pop(key, None)
    if fetched is None:
        cache.touch_page(proxy.id, page_key, checked_at)
        cache.stats.hits += 1
        return Due(False, time.monotonic() + cache.ttl(proxy), checked_at)
    cache.stats.misses += 1
    return fetched


def current(
    cache: UpstreamCache,
    proxy: Repository,
    key: tuple[object, ...],
    page_key: str,
    kept: D | None,
    parse: Callable[[StoredPage], D],
    fetch: Callable[[StoredPage | None], StoredPage | None],
    nothing: Callable[[], D],
) -> D:
    """A document that may be absent upstream (a shard index, run_exports.json,
    channeldata.json) as it is to be served: `kept`, read again from its row when another
    process changed it, served while fresh, else revalidated through `fetch` (given the row
    whose validators to send, or None); `nothing()` when there is nothing to serve and the
    upstream cannot give it (offline, failing)."""
    stored = cache.read_page(proxy.id, page_key)
    if stored is not None and (kept is None or kept.digest != stored.digest):
        kept = parse(stored)
    elif stored is not None and kept is not None:
        kept.checked_at = stored.checked_at  # another process may have revalidated
    if kept is not None:
        due = kept_due(cache, proxy, key, kept.checked_at)
        if due is not None:
            return served(kept, due)
    elif cache.offline(proxy):
        return nothing()
    try:
        answer = revalidate(
            cache,
            proxy,
            key,
            page_key,
            lambda: fetch(stored if kept is not None else None),
            kept=kept is not None,
        )
    except (UpstreamError, TooLarge):
        return nothing()
    if isinstance(answer, Due):
        assert kept is not None
        return served(kept, answer)
    found = parse(answer)
    found.expires = time.monotonic() + cache.ttl(proxy)
    return found
