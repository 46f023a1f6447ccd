"""Rendered pages kept with their ETag, valid while what they depend on is unchanged.

A page is rendered once per change, not per request. Each entry remembers the journal
serial at which it was last known good and a *stamp*: the serials of exactly what it depends
on (for a project page, that project in each repository of the resolution order). A request
that finds the newest serial unchanged gets the cached bytes without touching the database;
when the serial moved, one small query recomputes the stamp, and only a changed stamp
renders the page again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    body: bytes
    content_type: str
    etag: str  # quoted, strong
    last_serial: int
    zst: bytes | None = None  # the body compressed with zstd, where the format has one
    # Made from a proxy's cached copy because its upstream could not be asked (RFC 7234's
    # `Warning: 110 - "Response is Stale"` goes with it).
    stale: bool = False

    def read(self) -> bytes:
        """The whole body (as conda_proxied.FilePage.read gives a page kept in a file)."""
        return self.body

    @classmethod
    def of(
        cls,
        body: bytes,
        content_type: str,
        last_serial: int,
        zst: bytes | None = None,
        stale: bool = False,
    ) -> Page:
        etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
        return cls(body, content_type, etag, last_serial, zst, stale)


@dataclass
class _Entry:
    page: Page
    stamp: Hashable
    checked_at: int
    size: int
    expires: float | None = None  # monotonic time; pages made from upstreams expire


ENTRY_OVERHEAD = 512  # bytes counted for each entry besides its bodies and key


def entry_size(key: Hashable, page: Page) -> int:
    """What an entry is counted as: its bodies, its key and a fixed overhead, so many tiny
    pages cannot hold more memory than the budget says."""
    return ENTRY_OVERHEAD + len(repr(key)) + len(page.body) + len(page.zst or b"")


class PageCache:
    """A byte-bounded LRU of rendered pages."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def fresh(self, key: Hashable, serial: int) -> Page | None:
        """The cached page if it was validated at exactly this serial (the fast path)."""
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.checked_at == serial
            and (entry.expires is None or entry.expires > time.monotonic())
        ):
            return entry.page
        return None

    def get(
        self,
        key: Hashable,
        serial: int,
        stamp: Callable[[], Hashable],
        render: Callable[[], Page],
        expires: Callable[[], float | None] = lambda: None,
    ) -> Page:
        """The page, rendered again only when its stamp changed. `expires` (asked after
        the stamp) bounds how long the entry may be served without asking the stamp
        again, for pages that depend on more than the journal (an upstream's)."""
        page = self.fresh(key, serial)
        if page is not None:
            return page
        current = stamp()
        until = expires()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.stamp == current:
                entry.checked_at = serial
                entry.expires = until
                self._entries.move_to_end(key)
                return entry.page
        page = render()
        self._put(key, _Entry(page, current, serial, entry_size(key, page), until))
        return page

    def _put(self, key: Hashable, entry: _Entry) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            if entry.size > self.max_bytes:
                return
            self._entries[key] = entry
            self._bytes += entry.size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.size

    def expire(self, which: Callable[[Hashable], bool]) -> None:
        """Have the entries whose keys `which` picks ask their stamp again on their next
        request (re-rendered only if it changed): for what changes outside the journal."""
        with self._lock:
            for key, entry in self._entries.items():
                if which(key):
                    entry.expires = 0.0

    @property
    def size(self) -> int:
        """Bytes counted against `max_bytes`."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
