"""Failed-login limiting: a sliding window of failure times per key (user name, address).

In memory, per process: with several processes each one limits on its own, so the
effective limit is at most `limit` times the number of processes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

MAX_KEYS = 100_000


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
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if times is not None and len(times) >= self.limit:
                    # the oldest failure that keeps the key at the limit must age out
                    wait = max(wait, times[len(times) - self.limit] + self.window - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        with self._lock:
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
