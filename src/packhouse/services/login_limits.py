"""Failed-login limiting shared by every process of a server, on any number of machines:
the failures are rows in the database (db/login_failure_store.py) and the rule is
auth/ratelimit.py's sliding window. An attempt is counted before its password is verified,
in the write transaction that checked the count, so a concurrent burst against several
processes cannot all pass; a success takes its count back.

Only password logins get here (tokens and remembered credentials do not), and a key that is
already limited is answered from a read, so a flood of refused attempts writes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Connection

from packhouse.auth.ratelimit import FailureLimiter, wait_seconds
from packhouse.db import login_failure_store
from packhouse.db.engine import Database
from packhouse.errors import Unavailable

log = logging.getLogger("packhouse.auth")

PRUNE_EVERY = 300.0  # seconds between removals of failures older than the window


class SharedFailureLimiter:
    def __init__(
        self, db: Database, limit: int, window: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.limit = limit
        self.window = window
        self._db = db
        self._clock = clock
        self._pruned = 0.0
        # the same rule in memory, for while the database takes no writes
        self._memory = FailureLimiter(limit, window, clock)
        self._alone: set[tuple[str, ...]] = set()  # attempts counted there, to forgive there

    def _wait(self, conn: Connection, keys: Sequence[str], now: float) -> int:
        recent = login_failure_store.recent(conn, keys, now - self.window)
        return wait_seconds(recent.values(), self.limit, self.window, now)

    def attempt(self, keys: Sequence[str]) -> int:
        """Count an attempt as a failure of every key, unless one of them is limited: then
        count nothing and return the seconds to wait. 0 means counted: go on and verify.

        While the database takes no writes (locked past its busy timeout, or unreachable),
        this process counts in memory alone, so logins and reads go on meanwhile."""
        now = self._clock()
        try:
            with self._db.read() as conn:
                wait = self._wait(conn, keys, now)
            if wait:
                return wait
            with self._db.write() as conn:
                if now - self._pruned > PRUNE_EVERY:
                    login_failure_store.prune(conn, now - self.window)
                    self._pruned = now
                wait = self._wait(conn, keys, now)
                if not wait:
                    login_failure_store.add(conn, keys, now)
                return wait
        except Unavailable as exc:
            log.warning("counting failed logins in this process only: %s", exc.message)
            self._alone.add(tuple(keys))
            return self._memory.attempt(keys)

    def forgive(self, keys: Sequence[str]) -> None:
        """Take back an attempt counted by `attempt` (its login succeeded, or was not tried)."""
        if tuple(keys) in self._alone:
            self._alone.discard(tuple(keys))
            self._memory.forgive(keys)
            return
        try:
            with self._db.write() as conn:
                login_failure_store.forgive(conn, keys)
        except Unavailable as exc:  # the failure stays counted until its window passes
            log.warning("could not take back a counted login: %s", exc.message)
