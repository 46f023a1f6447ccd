"""The BlobStore port: bytes stored once, by sha256.

An upload is first written to a local `IncomingFile` (hashing as it streams, so it can be
validated with seekable reads), then committed with `put_file`. Committing is atomic: a
reader never sees a partial blob.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from packhouse.errors import TooLarge
from packhouse.types import Sha256

INCOMING_PREFIX = "incoming-"  # an upload or an upstream file being received
TEMP_PREFIX = "blob-"  # a blob being written by a store


@dataclass(frozen=True)
class BlobInfo:
    sha256: Sha256
    size: int
    modified: datetime | None = None  # None: unknown (the in-memory store)


class BlobStore(Protocol):
    def put_file(self, sha256: Sha256, path: Path) -> None:
        """Store the file at `path` under `sha256` (atomically; a no-op if present)."""

    def put_bytes(self, sha256: Sha256, data: bytes) -> None:
        """Store `data` under `sha256` (atomically; a no-op if present)."""

    def exists(self, sha256: Sha256) -> bool: ...

    def open(self, sha256: Sha256, start: int = 0, end: int | None = None) -> BinaryIO:
        """Open a stored blob for reading from byte `start` (a store may also stop at `end`,
        exclusive; readers stop there themselves). Raises ArtifactNotFound if absent."""

    def size(self, sha256: Sha256) -> int:
        """The blob's size in bytes; raises ArtifactNotFound if absent."""

    def url_for(self, sha256: Sha256, filename: str) -> str | None:
        """A short-lived URL clients may fetch the blob from directly, or None to have the
        server send the bytes."""

    def local_path(self, sha256: Sha256) -> Path | None:
        """A filesystem path the server may send with zero-copy, or None."""

    def delete(self, sha256: Sha256) -> None: ...

    def iter_blobs(self) -> Iterator[BlobInfo]: ...

    def temp_dirs(self) -> list[Path]:
        """Local directories where the store writes temporary files of its own (made by
        `claimed_temp_file` with TEMP_PREFIX), for `fsck` and `serve` to clear."""


class Digests:
    """sha256, md5 and blake2b-256 of a byte stream, updated chunk by chunk."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._blake2b = hashlib.blake2b(digest_size=32)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        self._md5.update(chunk)
        self._blake2b.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> Sha256:
        return Sha256(self._sha256.hexdigest())

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    @property
    def blake2b_256(self) -> str:
        return self._blake2b.hexdigest()


def claimed_temp_file(directory: Path, prefix: str) -> tuple[int, Path]:
    """A new temporary file, open and locked (flock) until its descriptor is closed: a
    process killed with -9 drops the lock, so `abandoned` can tell the files a live
    process (this one or another sharing the directory) still uses from those left behind."""
    while True:
        fd, name = tempfile.mkstemp(dir=directory, prefix=prefix)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:
            return fd, Path(name)
        os.close(fd)  # a cleaner took it between mkstemp and flock, and removed it


def abandoned(path: Path, *, remove: bool) -> bool:
    """Whether no process holds the lock of a temporary file made by `claimed_temp_file`
    (it was left by a process that died); with `remove`, such a file is removed. The
    removal happens under the lock, and the owner checks after locking that its file is
    still linked, so a file being created is never lost."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False  # gone already, or not a plain file of ours
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # in use by a live process
        held = os.fstat(fd)
        try:
            now = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return False  # its owner finished with it meanwhile
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            return False
        if remove:
            path.unlink()
        return True
    finally:
        os.close(fd)


class Abandoned(Exception):
    """Raised to a reader following an IncomingFile that was discarded before it finished."""


class IncomingFile:
    """A local temporary file that hashes what is written and refuses to pass a size limit.
    It stays open (and locked, see `claimed_temp_file`) until `discard`.

    `follow()` gives readers of the bytes as they arrive (an archive check that runs while
    the upload streams in), and `checks` holds such checks' results by what they checked."""

    def __init__(self, directory: Path, max_bytes: int, label: str = "file") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, self.path = claimed_temp_file(directory, INCOMING_PREFIX)
        self._file: BinaryIO = os.fdopen(fd, "w+b")
        self.digests = Digests()
        self.max_bytes = max_bytes
        self.label = label
        self.checks: dict[Any, Future[Any]] = {}
        self._grown = threading.Condition()
        self._followed = False
        self._flushed = 0  # bytes the followers may read
        self._state = "receiving"  # then "finished" or "discarded"

    def write(self, chunk: bytes) -> None:
        if self.digests.size + len(chunk) > self.max_bytes:
            raise TooLarge(
                f"the {self.label} is larger than the limit of {self.max_bytes} bytes"
                " (max_upload_bytes)"
            )
        self._file.write(chunk)
        self.digests.update(chunk)
        if self._followed:
            self._file.flush()  # readable through the followers' own descriptors
            with self._grown:
                self._flushed = self.digests.size
                self._grown.notify_all()

    def finish(self) -> None:
        """Make the bytes durable; the file stays open, and so locked, until `discard`."""
        self._file.flush()
        self._set_state("finished")
        os.fsync(self._file.fileno())

    def discard(self) -> None:
        self._set_state("discarded")
        self.path.unlink(missing_ok=True)
        if not self._file.closed:
            self._file.close()

    def follow(self) -> BinaryIO:
        """A reader of the bytes written so far and of those still to come: a read waits
        for them until `finish` (then the end of the file is the end of the upload), and
        raises Abandoned once the file is discarded."""
        self._file.flush()
        with self._grown:
            self._followed = True
            self._flushed = self.digests.size
        return _Follower(self)  # type: ignore[return-value]

    def wait_finished(self) -> int:
        """Wait until the upload is complete; its size. Raises Abandoned if it was not."""
        with self._grown:
            self._grown.wait_for(lambda: self._state != "receiving")
        if self._state == "discarded":
            raise Abandoned(self.label)
        return self.digests.size

    def _set_state(self, state: str) -> None:
        with self._grown:
            if self._state == "receiving" or state == "discarded":
                self._state = state
            if not self._file.closed:
                self._flushed = self.digests.size  # finish and discard flush first
            self._grown.notify_all()

    def __enter__(self) -> IncomingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


class _Follower(io.RawIOBase):
    """Reads an IncomingFile through a descriptor of its own. A read returns as many bytes
    as asked for, waiting for them while the upload goes on, and fewer only at the end of
    the finished upload: what a file on disk returns, so a reader (gzip's header parser
    reads its magic with one `read(2)`) sees the bytes cut as it would from the file. The
    decompressors ask for 8 KiB at a time, so they follow the upload that closely."""

    def __init__(self, incoming: IncomingFile) -> None:
        self._incoming = incoming
        self._fd = os.open(incoming.path, os.O_RDONLY)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        incoming = self._incoming
        with incoming._grown:
            incoming._grown.wait_for(
                lambda: incoming._state != "receiving" or incoming._flushed >= self._pos + want
            )
            if incoming._state == "discarded":
                raise Abandoned(incoming.label)
            available = incoming._flushed - self._pos
        count = os.preadv(self._fd, [memoryview(buffer)[: min(want, available)]], self._pos)
        self._pos += count
        return count

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
