"""The BlobStore port: bytes stored once, by sha256.

An upload is first written to a local `IncomingFile` (hashing as it streams, so it can be
validated with seekable reads), then committed with `put_file`. Committing is atomic: a
reader never sees a partial blob.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from packhouse.errors import TooLarge
from packhouse.types import Sha256


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


class IncomingFile:
    """A local temporary file that hashes what is written and refuses to pass a size limit."""

    def __init__(self, directory: Path, max_bytes: int, label: str = "file") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix="incoming-")
        self.path = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "w+b")
        self.digests = Digests()
        self.max_bytes = max_bytes
        self.label = label

    def write(self, chunk: bytes) -> None:
        if self.digests.size + len(chunk) > self.max_bytes:
            raise TooLarge(
                f"the {self.label} is larger than the limit of {self.max_bytes} bytes"
                " (max_upload_bytes)"
            )
        self._file.write(chunk)
        self.digests.update(chunk)

    def finish(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> IncomingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()
