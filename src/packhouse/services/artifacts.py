"""Committing and dropping artifacts: the one flow PyPI and conda uploads share.

Blobs are written first, outside any transaction (an S3 put may be slow), then the row is
added in one write transaction. Writers are serialised (SQLite's write lock, PostgreSQL's
advisory lock) but never call the blob store while they hold it: blob claims
(services/blob_claims.py) keep every live artifact's bytes stored whatever runs beside it,
in this process or another:

- committing an artifact claims its blobs for use before storing them, and gives the claim
  up in the transaction that adds the row;
- dropping a blob claims it for deletion only when no live row and no writer needs it, and
  deletes it after that transaction.

A refused or lost race leaves at most an unreferenced blob, which `packhouse fsck --remove`
reclaims. A process killed while receiving an upload or writing a blob leaves a temporary
file; `serve` removes those at start and `fsck` reports them (`abandoned_temp_files`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from packhouse.db import artifact_store, journal_store, repository_store, search_store
from packhouse.db.artifact_store import Artifact, NewArtifact
from packhouse.db.repository_store import Repository
from packhouse.services import blob_claims, pypi_api
from packhouse.services.context import Context
from packhouse.storage.base import INCOMING_PREFIX, TEMP_PREFIX, abandoned
from packhouse.types import Format, Sha256

log = logging.getLogger("packhouse.blobs")


@dataclass(frozen=True)
class PendingArtifact:
    """An artifact ready to commit, with the bytes it needs stored."""

    new: NewArtifact
    project: str  # normalised (PyPI) or the conda package name
    display_name: str
    files: Mapping[Sha256, Path] = field(default_factory=dict)
    data: Mapping[Sha256, bytes] = field(default_factory=dict)
    detail: Mapping[str, Any] = field(default_factory=dict)
    # a last check inside the write transaction, which may adjust the artifact or refuse it
    # by raising (PyPI's release rules: services/pypi_releases.py)
    guard: Callable[[Connection, PendingArtifact], PendingArtifact] | None = None


def existing(ctx: Context, repo: Repository, filename: str) -> Artifact | None:
    """The artifact (live or deleted) already holding this filename in the repository."""
    with ctx.db.read() as conn:
        return artifact_store.by_filename(conn, repo.id, filename)


def commit(ctx: Context, repo: Repository, actor: str, pending: PendingArtifact) -> Artifact | None:
    """Store the blobs, then the row, journalled. Returns None when committed, or the
    artifact that holds the filename already (a concurrent upload won; nothing changed)."""
    new = pending.new
    shas = [*pending.files, *pending.data]
    try:
        with blob_claims.using(ctx, shas) as claim:
            _put(ctx, pending)
            try:
                with ctx.db.write() as conn:
                    again = artifact_store.by_filename(conn, repo.id, new.filename)
                    if again is not None:
                        return again
                    if pending.guard is not None:
                        pending = pending.guard(conn, pending)
                    add_row(conn, repo, actor, pending, action="upload")
                    claim.release(conn)
            except IntegrityError:
                # The unique (repository, filename) caught a concurrent upload of that name.
                winner = existing(ctx, repo, new.filename)
                if winner is None:
                    raise
                return winner
    except Exception:
        # no row lists the blobs just stored (the disk filled at the commit, the database
        # went away): they go again unless another row or writer uses them
        _drop_quietly(ctx, shas)
        raise
    return None


def _drop_quietly(ctx: Context, shas: Iterable[str]) -> None:
    try:
        drop_unreferenced(ctx, shas)
    except Exception:  # the caller's own error matters more; fsck --remove finds them
        log.warning("could not drop the unused blobs %s of an upload", sorted(shas))


def add_row(
    conn: Connection, repo: Repository, actor: str, pending: PendingArtifact, *, action: str
) -> int:
    """Journal the artifact and add its row, inside an open write transaction whose blobs
    are already stored; returns its serial. `commit` uses it for one upload; a caller that
    adds several artifacts at once (promotion) calls it for each in one transaction."""
    new = pending.new
    serial = journal_store.append(
        conn,
        actor=actor,
        action=action,
        repository=repo.qualified_name,
        project=pending.project,
        filename=new.filename,
        detail={"version": new.version, "sha256": new.sha256, **pending.detail},
    )
    project = repository_store.ensure_project(
        conn, repo.id, pending.project, pending.display_name, serial
    )
    parts = pypi_api.stored_parts(new) if repo.format is Format.PYPI else None
    added = artifact_store.add(conn, repo.id, project.id, new, serial, parts)
    if new.yanked:  # a yanked file (imported, promoted) may leave an older one the entry
        search_store.refresh(conn, [project.id])
    else:
        search_store.uploaded(conn, project.id, added)
    repository_store.touch(conn, repo.id, serial)
    return serial


def _put(ctx: Context, pending: PendingArtifact) -> None:
    for sha, path in pending.files.items():
        ctx.blobs.put_file(sha, path)
    for sha, data in pending.data.items():
        ctx.blobs.put_bytes(sha, data)


def drop_unreferenced(ctx: Context, shas: Iterable[str]) -> list[str]:
    """Delete the blobs no live artifact, cached file or writer uses; returns those deleted
    (services/blob_claims.py: no upload of the same bytes can lose them meanwhile)."""
    return blob_claims.delete_unused(ctx, shas)


def temp_files(ctx: Context) -> list[Path]:
    """The temporary files of uploads being received (or left behind) and of blobs being
    written, in every process that shares the data directory."""
    places = [(ctx.tmp_dir, INCOMING_PREFIX)]
    places += [(directory, TEMP_PREFIX) for directory in ctx.blobs.temp_dirs()]
    found: list[Path] = []
    for directory, prefix in places:
        if directory.is_dir():
            found += sorted(p for p in directory.glob(prefix + "*") if p.is_file())
    return found


def abandoned_temp_files(ctx: Context, *, remove: bool) -> list[Path]:
    """The temporary files no live process holds (each is locked while in use, so a file
    another server process sharing the data directory is writing is never taken), removed
    when `remove`. A process killed with -9 mid-upload leaves such files."""
    return [path for path in temp_files(ctx) if abandoned(path, remove=remove)]
