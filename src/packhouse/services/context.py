"""What every service needs, built by the app factory or the CLI and passed down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from packhouse.config import Settings
from packhouse.db.engine import Database
from packhouse.services.pages import PageCache
from packhouse.storage.base import BlobStore


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    settings: Settings
    db: Database
    blobs: BlobStore
    pages: PageCache = field(default_factory=PageCache)
    clock: Callable[[], datetime] = _utcnow

    @property
    def tmp_dir(self) -> Path:
        return self.settings.data / "tmp"
