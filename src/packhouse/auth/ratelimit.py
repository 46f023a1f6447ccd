"""Failed-login limiting: a sliding window of failure times per key (user name, address).

A login counts as a failure before it is verified (`attempt`, which checks and counts under
one lock, so a concurrent burst cannot all pass the check) and is forgiven once it succeeds
(`forgive`).

`FailureLimiter` keeps the failures in memory, for one process; the server uses the same
rule over the database (services/login_limits.py), so all its processes share one limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

MAX_KEYS = 100_000


def wait_seconds(failures: Iterable[Sequence[float]], limit: int, window: float, now: float) -> int:
    """Seconds until every key may try again, given each key's recent failure times
    (oldest first); 0 when none has reached `limit` within `window`."""
    wait = 0.0
    for times in failures:
        if len(times) >= limit:
            # the oldest failure that keeps the key at the limit must age out
            wait = max(wait, times[len(times) - limit] + window - now)
    return math.ceil(wait) if wait > 0 else 0


class FailureLimiter:
    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, keys: Iterable[str]) -> int:
        """Seconds until every key may try again; 0 when none is limited."""
        now = self._clock()
        with self._lock:
            return self._wait(keys, now)

    def attempt(self, keys: Sequence[str]) -> int:
        """Count an attempt as a failure of every key, unless one of them is limited: then
        count nothing and return the seconds to wait. 0 means counted: go on and verify."""
        now = self._clock()
        with self._lock:
            wait = self._wait(keys, now)
            if not wait:
                self._add(keys, now)
            return wait

    def forgive(self, keys: Sequence[str]) -> None:
        """Take back an attempt counted by `attempt` (its login succeeded). Which of a key's
        entries goes does not matter much: they differ only by the time of a verification."""
        with self._lock:
            for key in keys:
                times = self._failures.get(key)
                if times:
                    times.pop()
                    if not times:
                        del self._failures[key]

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        with self._lock:
            self._add(keys, now)

    def _wait(self, keys: Iterable[str], now: float) -> int:
        recent = [self._recent(key, now) for key in keys]
        return wait_seconds([t for t in recent if t is not None], self.limit, self.window, now)

    def _add(self, keys: Iterable[str], now: float) -> None:
        if len(self._failures) > MAX_KEYS:
            self._prune(now)
        for key in keys:
            times = self._failures.setdefault(key, deque())
            times.append(now)
            while len(times) > self.limit:
                times.popleft()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
