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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
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


@dataclass(frozen=True)
class Stored:
    """Blobs claimed and stored before the row that will use them is due (`stored_early`)."""

    claim: blob_claims.UseClaim
    shas: frozenset[str]


@contextmanager
def stored_early(ctx: Context, files: Mapping[Sha256, Path]) -> Iterator[Stored | None]:
    """Claim and store an upload's file while its archive check still runs (in the check
    thread, services/streamed_checks.py), so that the two overlap; pass what this yields to
    `commit`. A refused upload's blobs are dropped again on the way out, unless a row or
    another writer uses them. Yields None when the blobs cannot be stored now (the store is
    unreachable, say): `commit` stores them then, as without this, and says what failed, so
    a refusal of the archive still comes first."""
    shas = sorted(files)
    claiming = blob_claims.using(ctx, shas)
    early: Stored | None = None
    stored: list[str] = []
    try:
        early = Stored(claiming.__enter__(), frozenset(shas))
        for sha, path in files.items():
            ctx.blobs.put_file(sha, path)
            stored.append(sha)
    except Exception as error:
        if early is not None:
            claiming.__exit__(type(error), error, error.__traceback__)
            if stored:  # a put that failed stored nothing
                _drop_quietly(ctx, stored)
        early = None
    if early is None:
        yield None
        return
    try:
        yield early
    except BaseException as error:
        claiming.__exit__(type(error), error, error.__traceback__)
        _drop_quietly(ctx, shas)
        raise
    claiming.__exit__(None, None, None)
    if not early.claim.released:  # not committed: the same file was there, or a race lost
        _drop_quietly(ctx, shas)


def _drop_quietly(ctx: Context, shas: Iterable[str]) -> None:
    try:
        drop_unreferenced(ctx, shas)
    except Exception:  # the caller's own outcome matters more; fsck --remove finds them
        log.warning("could not drop the unused blobs %s of an upload", sorted(shas))


def commit(
    ctx: Context,
    repo: Repository,
    actor: str,
    pending: PendingArtifact,
    early: Stored | None = None,
) -> Artifact | None:
    """Store the blobs, then the row, journalled. Returns None when committed, or the
    artifact that holds the filename already (a concurrent upload won; nothing changed).
    `early`: what `stored_early` stored already, with its claim."""
    new = pending.new
    shas = [*pending.files, *pending.data]
    claiming: AbstractContextManager[blob_claims.UseClaim]
    if early is not None and early.shas >= set(shas):
        claiming = nullcontext(early.claim)
    else:
        claiming, early = blob_claims.using(ctx, shas), None
    with claiming as claim:
        if early is None:
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
            # The unique (repository, filename) caught a concurrent upload of the same name.
            winner = existing(ctx, repo, new.filename)
            if winner is None:
                raise
            return winner
    return None


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
