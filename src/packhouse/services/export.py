"""`packhouse export DIR`: everything a server holds, as a directory another server imports.

The format (version 1, documented in docs/export.md):

    DIR/manifest.json        written last: its presence marks a complete export
    DIR/<table>.jsonl        one JSON object per row, every table of the schema, in
                             primary-key order; values converted by column type
                             (db/dump_store.py)
    DIR/blobs/<sha256>       every blob a row needs, named by the sha256 of its bytes

The manifest names the format and its version, the schema revision the rows fit, and for each
table its file, row count, size and sha256. Rows are read in one snapshot (a running server
may be exported) and streamed row by row; blobs are copied as the rows that need them are
written (several at a time), each hashed while it is copied and refused if its bytes
disagree with its name.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

from packhouse.db import dump_store
from packhouse.db.migrate import current_revision
from packhouse.errors import ArtifactNotFound, InvalidInput, PackhouseError
from packhouse.services.context import Context
from packhouse.services.parallel import Parallel
from packhouse.storage.base import BlobStore
from packhouse.types import Sha256

FORMAT = "packhouse-export"
VERSION = 1
MANIFEST = "manifest.json"
CHUNK = 1024 * 1024

# (what is being done, how many done, how many in all or None)
Progress = Callable[[str, int, int | None], None]


class CorruptBlob(PackhouseError):
    """A stored blob whose bytes do not hash to its name."""


@dataclass(frozen=True)
class ExportReport:
    directory: Path
    rows: dict[str, int]
    blobs: int
    blob_bytes: int


def no_progress(_what: str, _done: int, _total: int | None) -> None:
    return None


def export_all(ctx: Context, directory: Path, progress: Progress = no_progress) -> ExportReport:
    """Write every table and every blob a row needs into `directory` (new or empty)."""
    _prepare(directory)
    blobs_dir = directory / "blobs"
    blobs_dir.mkdir()
    revision = current_revision(ctx.db)
    tables: list[dict[str, Any]] = []
    rows: dict[str, int] = {}
    copied = copied_bytes = 0
    inflight: set[str] = set()  # blobs being copied (their file appears when done)
    lock = threading.Lock()

    def copy(sha: str, what: str) -> None:
        nonlocal copied, copied_bytes
        try:
            size = copy_blob(ctx.blobs, Sha256(sha), blobs_dir / sha, what=what)
        finally:
            with lock:
                inflight.discard(sha)
        with lock:
            copied += 1
            copied_bytes += size

    with dump_store.snapshot(ctx.db) as conn, Parallel() as copies:
        total = sum(dump_store.counts(conn).values())
        done = 0
        progress("exporting rows and blobs", 0, total)
        for name in dump_store.TABLES:
            path = directory / f"{name}.jsonl"
            digest = hashlib.sha256()
            n = size = 0
            with path.open("wb") as out:
                for row in dump_store.iter_rows(conn, name):
                    for sha in dump_store.blob_refs(name, row):
                        with lock:
                            if sha in inflight or (blobs_dir / sha).exists():
                                continue
                            inflight.add(sha)
                        copies.submit(functools.partial(copy, sha, _label(row)))
                    line = orjson.dumps(row) + b"\n"
                    out.write(line)
                    digest.update(line)
                    n += 1
                    size += len(line)
                    done += 1
                    if done % 500 == 0:
                        progress("exporting rows and blobs", done, total)
                out.flush()
                os.fsync(out.fileno())
            rows[name] = n
            tables.append(
                {
                    "name": name,
                    "file": path.name,
                    "rows": n,
                    "bytes": size,
                    "sha256": digest.hexdigest(),
                }
            )
        progress("exporting rows and blobs", done, total)
    os.sync()  # every table file and blob durable before the manifest says they are there
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "packhouse_version": version("packhouse"),
        "schema_revision": revision,
        "created_at": datetime.now(UTC).isoformat(),
        "source": {
            "database": "sqlite" if ctx.db.is_sqlite else "postgresql",
            "storage": ctx.settings.storage,
        },
        "tables": tables,
        "blobs": {"directory": "blobs", "count": copied, "bytes": copied_bytes},
    }
    _write_atomic(directory / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return ExportReport(directory, rows, copied, copied_bytes)


def _prepare(directory: Path) -> None:
    if directory.exists():
        if not directory.is_dir():
            raise InvalidInput(f"{directory} is not a directory")
        if any(directory.iterdir()):
            raise InvalidInput(f"{directory} is not empty: export into a new or empty directory")
    # The rows hold password and token hashes and proxies' upstream credentials.
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def _label(row: dict[str, Any]) -> str:
    return str(row.get("filename") or row.get("key") or "a row")


def copy_blob(store: BlobStore, sha256: Sha256, target: Path, *, what: str) -> int:
    """Copy one blob to the file `target`, hashing as it goes; returns its size. Raises if
    the blob is missing or its bytes disagree with its name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                source = store.open(sha256)
            except ArtifactNotFound:
                raise ArtifactNotFound(
                    f"the blob {sha256} of {what} is missing from the store, so the export"
                    " would lose it; `packhouse fsck` lists what is missing"
                ) from None
            with source:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        if digest.hexdigest() != sha256:
            raise CorruptBlob(
                f"the stored blob {sha256} of {what} has bytes whose sha256 is"
                f" {digest.hexdigest()}: it is damaged; `packhouse fsck` lists such blobs"
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
