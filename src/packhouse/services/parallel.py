"""A few blob copies at a time: a blob store's calls wait on the network (S3) or on fsync
(local disk), so export and import keep several in flight instead of one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

COPIES = 8  # in flight at once; more gains little against one disk or one S3 endpoint


class Parallel:
    """Runs jobs on COPIES threads, at most 4 x COPIES queued (so memory stays bounded);
    the first failure is raised by the next `submit` or by leaving the block."""

    def __init__(self, workers: int = COPIES) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="packhouse-copy")
        self._slots = threading.BoundedSemaphore(workers * 4)
        self._error: BaseException | None = None

    def submit(self, job: Callable[[], object]) -> None:
        self._raise()
        self._slots.acquire()
        future = self._pool.submit(job)
        future.add_done_callback(self._done)

    def _done(self, future: Future[object]) -> None:
        self._slots.release()
        error = future.exception()
        if error is not None and self._error is None:
            self._error = error

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Parallel:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._pool.shutdown(wait=True, cancel_futures=exc is not None)
        if exc is None:
            self._raise()
