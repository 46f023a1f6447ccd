"""Archive checks that run while an upload's body is still arriving.

Checking a `.tar.bz2` conda package means decompressing all of it (info/ may come last, and
every member is checked). The format is read forward only, so the check can start with the
first bytes: `start` runs it in a thread of its own, on a reader that follows the
IncomingFile as it is written (bz2 decoding, most of the check, releases the GIL, so it runs
beside the event loop that receives the body). The upload service then takes the check's
outcome (`result`) where it would have run the same check on the finished file: the same
code on the same bytes, so the same answer and the same message.

bz2 decodes a block (up to 900 kB of tar) only once all of it is in, so a package of one
block, as most small ones are, is checked after its last byte anyway; a package of several
blocks on a real network is decoded while its later blocks arrive (docs/benchmarks.md).

Only .tar.bz2. Other checks are mostly tarfile's or zipfile's Python, and a thread holding the
GIL delays every return of the event loop and of the service thread from their socket,
database and fsync calls by up to the switch interval (5 ms): measured in process and through
the server (docs/benchmarks.md), checking beside made .conda uploads 1.5x and sdist uploads up
to 1.5x slower. Those are checked by the upload service after the upload, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, BinaryIO, TypeVar

from packhouse.formats.conda.archive import Limits, read_tar_bz2_members
from packhouse.storage.base import Abandoned, IncomingFile

__all__ = ["conda_key", "result", "start"]

T = TypeVar("T")


def conda_key(filename: str, limits: Limits) -> Hashable:
    return ("conda", filename, limits)


def start(incoming: IncomingFile, filename: str) -> None:
    """Start checking `incoming` in a thread as it arrives, when `filename` is a .tar.bz2;
    other files are left to the upload service."""
    if filename.endswith(".tar.bz2"):
        limits = Limits()
        _follow(
            incoming,
            conda_key(filename, limits),
            lambda f: read_tar_bz2_members(f, filename, limits),
        )


def result(incoming: IncomingFile, key: Hashable, check: Callable[[], T]) -> T:
    """The outcome of the check started for `key` (its value, or its exception raised
    here), or `check()` run now on the finished file when none was started."""
    future = incoming.checks.pop(key, None)
    if future is None:
        return check()
    value: T = future.result()
    return value


def _follow(incoming: IncomingFile, key: Hashable, check: Callable[[BinaryIO], Any]) -> None:
    """Run `check` in a thread, on a reader following `incoming` as it arrives."""
    reader = incoming.follow()

    def body() -> Any:
        with reader:
            return check(reader)

    _spawn(incoming, key, body)


def _spawn(incoming: IncomingFile, key: Hashable, body: Callable[[], Any]) -> None:
    future: Future[Any] = Future()

    def work() -> None:
        try:
            future.set_result(body())
        except Abandoned:
            future.cancel()  # the upload was cut short or refused: nobody waits for it
        except BaseException as error:  # handed to whoever takes the result
            future.set_exception(error)

    incoming.checks[key] = future
    threading.Thread(target=work, name="packhouse-archive-check", daemon=True).start()
