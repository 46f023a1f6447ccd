"""`packhouse import DIR`: load an export (services/export.py) into an empty server.

All or nothing, in this order:

1. the manifest is read and checked: its format and version, and that its schema revision
   is the target's (both servers on the same Packhouse schema);
2. the target database must be empty (no row in any table but those the migrations fill,
   which are replaced: a server that has started once holds its `main` repositories and
   admin user, so import before the first `serve`);
3. every table file is checked against the manifest's sha256 and size, before anything is
   written;
4. blobs first, several at a time: each file in blobs/ is hashed and refused unless its
   bytes match its name, then stored (a blob already in the target store is kept: same
   name, same bytes);
5. then every row in one write transaction, streamed in batches, each row's blobs checked
   present; the database's id sequences are moved past the imported ids.

A failure before the transaction commits leaves no row; blobs stored by then are
unreferenced, and `packhouse fsck --remove` reclaims them.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection

from packhouse.db import dump_store
from packhouse.db.migrate import current_revision
from packhouse.errors import Conflict, InvalidInput
from packhouse.services.context import Context
from packhouse.services.export import CHUNK, FORMAT, MANIFEST, VERSION, Progress, no_progress
from packhouse.services.parallel import Parallel
from packhouse.types import Sha256

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
BATCH = 1000


@dataclass(frozen=True)
class ImportReport:
    rows: dict[str, int]
    blobs: int
    blob_bytes: int


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InvalidInput(
            f"{path} does not exist: {directory} is not a complete Packhouse export"
            " (the manifest is written last)"
        ) from None
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"{path} is not a Packhouse export manifest")
    if manifest.get("version") != VERSION:
        raise InvalidInput(
            f"{path} is export format version {manifest.get('version')!r}; this Packhouse"
            f" reads version {VERSION}"
        )
    return manifest


def import_all(ctx: Context, directory: Path, progress: Progress = no_progress) -> ImportReport:
    manifest = read_manifest(directory)
    revision = current_revision(ctx.db)
    if manifest.get("schema_revision") != revision:
        raise InvalidInput(
            f"the export was made at schema revision {manifest.get('schema_revision')!r} and"
            f" the target is at {revision!r}: run both on the same Packhouse version (the"
            " source's `packhouse db upgrade` first, then export again)"
        )
    tables = manifest["tables"]
    if [t["name"] for t in tables] != list(dump_store.TABLES):
        raise InvalidInput(f"the export's tables do not match this schema: {directory}")
    with ctx.db.read() as conn:
        _refuse_unless_empty(conn)
    total_rows = sum(int(t["rows"]) for t in tables)
    _verify_tables(directory, tables, progress)
    blobs_dir = directory / "blobs"
    blobs, blob_bytes = _store_blobs(ctx, blobs_dir, manifest["blobs"], progress)
    rows: dict[str, int] = {}
    done = 0
    with ctx.db.write() as conn:
        _refuse_unless_empty(conn)
        for name in dump_store.seeded_tables():
            dump_store.clear(conn, name)  # the export holds the source's rows of these
        progress("importing rows", 0, total_rows)
        for entry in tables:
            name = entry["name"]
            n = 0
            for batch in _batches(directory / entry["file"]):
                for row in batch:
                    for sha in dump_store.blob_refs(name, row):
                        if not (blobs_dir / sha).is_file():
                            raise InvalidInput(
                                f"{name} row {row.get('filename') or row.get('key')!r} needs"
                                f" blob {sha}, which the export does not hold"
                            )
                try:
                    dump_store.insert_rows(conn, name, batch)
                except ValueError as exc:
                    raise InvalidInput(f"{entry['file']}: {exc}") from None
                n += len(batch)
                done += len(batch)
                progress("importing rows", done, total_rows)
            if n != entry["rows"]:
                raise InvalidInput(
                    f"{entry['file']} holds {n} rows, the manifest says {entry['rows']}"
                )
            rows[name] = n
        dump_store.reset_sequences(conn)
    return ImportReport(rows, blobs, blob_bytes)


def _refuse_unless_empty(conn: Connection) -> None:
    seeded = dump_store.seeded_tables()
    held = {name: n for name, n in dump_store.counts(conn).items() if n and name not in seeded}
    if held:
        listed = ", ".join(f"{n} {name}" for name, n in held.items())
        raise Conflict(
            f"the target database is not empty ({listed}): import only into a new database"
            " (and a server that has never been started: its first start creates the"
            " `main` repositories and the admin user)"
        )


def _verify_tables(directory: Path, tables: list[dict[str, Any]], progress: Progress) -> None:
    for i, entry in enumerate(tables):
        progress("checking table files", i, len(tables))
        path = directory / entry["file"]
        if Path(entry["file"]).name != entry["file"]:
            raise InvalidInput(f"the manifest names a table file outside {directory}")
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            raise InvalidInput(f"{path} is missing from the export") from None
        if size != entry["bytes"] or digest.hexdigest() != entry["sha256"]:
            raise InvalidInput(
                f"{path} does not match the manifest (size or sha256 differ): the export is"
                " damaged or was edited"
            )
    progress("checking table files", len(tables), len(tables))


def _store_blobs(
    ctx: Context, blobs_dir: Path, expected: dict[str, Any], progress: Progress
) -> tuple[int, int]:
    total = int(expected["count"])
    count = size = 0
    lock = threading.Lock()

    def store(path: Path) -> None:
        nonlocal count, size
        digest = hashlib.sha256()
        with path.open("rb") as src:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != path.name:
            raise InvalidInput(
                f"blob {path} holds bytes whose sha256 is {digest.hexdigest()}: the export"
                " is damaged; nothing was imported"
            )
        ctx.blobs.put_file(Sha256(path.name), path)
        with lock:
            count += 1
            size += path.stat().st_size
            progress("checking and storing blobs", count, total)

    progress("checking and storing blobs", 0, total)
    with os.scandir(blobs_dir) as entries, Parallel() as stores:
        for entry in entries:
            if _SHA256.match(entry.name):  # not a .part- file an interrupted export left
                stores.submit(functools.partial(store, Path(entry.path)))
    if count != total:
        raise InvalidInput(f"{blobs_dir} holds {count} blobs, the manifest says {total}")
    return count, size


def _batches(path: Path) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    with path.open("rb") as src:
        for number, line in enumerate(src, 1):
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"{path} line {number}: {exc}") from None
            batch.append(row)
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch
