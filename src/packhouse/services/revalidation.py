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


def served(kept: K, due: Due) -> K:
    """`kept`, marked as `due` says it is served (and checked again, after a 304)."""
    if due.checked_at is not None:
        kept.checked_at = due.checked_at
    kept.stale, kept.expires = due.stale, due.expires
    return kept


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
