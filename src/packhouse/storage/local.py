"""Content-addressed blobs in a directory: `<root>/ab/cd/<sha256>`, written atomically."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from packhouse.errors import ArtifactNotFound
from packhouse.storage.base import TEMP_PREFIX, BlobInfo, claimed_temp_file
from packhouse.types import Sha256

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: Sha256) -> Path:
        if not _SHA256.match(sha256):
            raise ArtifactNotFound(f"no blob {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put_file(self, sha256: Sha256, path: Path) -> None:
        def copy(out: BinaryIO) -> None:
            with path.open("rb") as src:
                shutil.copyfileobj(src, out, 1024 * 1024)

        self._write(sha256, copy)

    def put_bytes(self, sha256: Sha256, data: bytes) -> None:
        self._write(sha256, lambda out: out.write(data))

    def _write(self, sha256: Sha256, fill: Callable[[BinaryIO], object]) -> None:
        """Write a blob atomically: a temporary file, fsync, rename, fsync the directory."""
        target = self._path(sha256)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = claimed_temp_file(self._tmp, TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
                os.replace(tmp_name, target)  # still locked: never taken for abandoned
        except BaseException:
            tmp_name.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def exists(self, sha256: Sha256) -> bool:
        return self._path(sha256).is_file()

    def open(self, sha256: Sha256, start: int = 0, end: int | None = None) -> BinaryIO:
        try:
            handle = self._path(sha256).open("rb")
        except FileNotFoundError:
            raise ArtifactNotFound(f"blob {sha256} is missing from the store") from None
        handle.seek(start)
        return handle

    def size(self, sha256: Sha256) -> int:
        try:
            return self._path(sha256).stat().st_size
        except FileNotFoundError:
            raise ArtifactNotFound(f"blob {sha256} is missing from the store") from None

    def url_for(self, sha256: Sha256, filename: str) -> str | None:
        return None

    def local_path(self, sha256: Sha256) -> Path | None:
        return self._path(sha256)

    def delete(self, sha256: Sha256) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def temp_dirs(self) -> list[Path]:
        return [self._tmp]

    def iter_blobs(self) -> Iterator[BlobInfo]:
        for path in self.root.glob("??/??/*"):
            if _SHA256.match(path.name):
                stat = path.stat()
                modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                yield BlobInfo(Sha256(path.name), stat.st_size, modified)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
