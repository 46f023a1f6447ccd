"""Archive checks that run while an upload's body is still arriving.

Checking a `.tar.bz2` conda package or a `.tar.gz` sdist means decompressing all of it (a
conda package's info/ may come last, and every member is checked), which costs more than
receiving, hashing and storing the file on a fast network. Those two formats are read
forward only, so the check can start with the first bytes: `start` runs it in a thread of
its own, on a reader that follows the IncomingFile as it is written (bz2 and zlib release
the GIL, so it runs beside the event loop that receives the body). The upload service then
takes the check's outcome (`result`) where it would have run the same check on the
finished file: the same code on the same bytes, so the same answer and the same message.

For a `.tar.bz2` the upload service stores the blob meanwhile (services/artifacts.py,
`stored_early`): bz2 decoding, most of that check, releases the GIL, so the two overlap. Not
for sdists: their check is mostly tarfile's Python, and a thread that holds the GIL delays
every return of the service thread from its database and fsync calls by up to the switch
interval (5 ms); in process, storing early made sdist uploads 1.2x and .conda ones 1.5x
slower, .tar.bz2 ones 0.8x. Zip formats (wheels, `.zip` sdists, `.conda`) are checked by the
upload service after the upload, as before: their central directory, at the end, comes first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from functools import partial
from typing import Any, BinaryIO, TypeVar

from packhouse.errors import InvalidUpload
from packhouse.formats.conda.archive import Limits, read_tar_bz2_members
from packhouse.formats.pypi.archives import ArchiveLimits, read_tar_sdist_stream
from packhouse.formats.pypi.filenames import parse_dist_filename
from packhouse.storage.base import Abandoned, IncomingFile

__all__ = ["result", "start"]

T = TypeVar("T")


def conda_key(filename: str, limits: Limits) -> Hashable:
    return ("conda", filename, limits)


def sdist_key(filename: str, limits: ArchiveLimits) -> Hashable:
    return ("sdist", filename, limits)


def start(incoming: IncomingFile, filename: str) -> None:
    """Start checking `incoming` in a thread as it arrives, when `filename` is of a format read
    forward only (.tar.bz2, .tar.gz); other files are left to the upload service."""
    if filename.endswith(".tar.bz2"):
        limits = Limits()
        _follow(
            incoming,
            conda_key(filename, limits),
            lambda f: read_tar_bz2_members(f, filename, limits),
        )
    elif filename.endswith(".tar.gz"):
        try:
            dist = parse_dist_filename(filename)
        except InvalidUpload:
            return  # the upload service refuses the name, saying why
        sdist_limits = ArchiveLimits()
        _follow(
            incoming,
            sdist_key(filename, sdist_limits),
            lambda f: read_tar_sdist_stream(f, dist, sdist_limits, partial(_size, incoming)),
        )


def result(incoming: IncomingFile, key: Hashable, check: Callable[[], T]) -> T:
    """The outcome of the check started for `key` (its value, or its exception raised
    here), or `check()` run now on the finished file when none was started."""
    future = incoming.checks.pop(key, None)
    if future is None:
        return check()
    value: T = future.result()
    return value


def _size(incoming: IncomingFile, final: bool) -> int:
    """The upload's size once complete, or (a lower bound) what has arrived so far."""
    return incoming.wait_finished() if final else incoming.digests.size


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
