"""The in-memory twin of the blob store, for tests."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from packhouse.errors import ArtifactNotFound
from packhouse.storage.base import BlobInfo
from packhouse.types import Sha256


class MemoryBlobStore:
    def __init__(self) -> None:
        self.blobs: dict[Sha256, bytes] = {}

    def put_file(self, sha256: Sha256, path: Path) -> None:
        self.blobs.setdefault(sha256, path.read_bytes())

    def put_bytes(self, sha256: Sha256, data: bytes) -> None:
        self.blobs.setdefault(sha256, data)

    def exists(self, sha256: Sha256) -> bool:
        return sha256 in self.blobs

    def open(self, sha256: Sha256, start: int = 0, end: int | None = None) -> BinaryIO:
        return io.BytesIO(self._get(sha256)[start:end])

    def size(self, sha256: Sha256) -> int:
        return len(self._get(sha256))

    def url_for(self, sha256: Sha256, filename: str) -> str | None:
        return None

    def _get(self, sha256: Sha256) -> bytes:
        try:
            return self.blobs[sha256]
        except KeyError:
            raise ArtifactNotFound(f"blob {sha256} is missing from the store") from None

    def local_path(self, sha256: Sha256) -> Path | None:
        return None

    def delete(self, sha256: Sha256) -> None:
        self.blobs.pop(sha256, None)

    def iter_blobs(self) -> Iterator[BlobInfo]:
        for sha, data in self.blobs.items():
            yield BlobInfo(sha, len(data))

    def temp_dirs(self) -> list[Path]:
        return []
