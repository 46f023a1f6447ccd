"""Artifacts: one row per uploaded file, live, yanked or deleted (a tombstone)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from packhouse.db.schema import (
    api_parts,
    artifacts,
    page_parts,
    projects,
    upstream_files,
    upstream_pages,
)


@dataclass(frozen=True)
class Artifact:
    id: int
    repository_id: int
    project_id: int
    project: str  # normalised
    filename: str
    version: str
    packagetype: str
    subdir: str | None
    sha256: str
    md5: str
    blake2b_256: str
    size: int
    upload_time: datetime
    uploader: str
    requires_python: str | None
    metadata_sha256: str | None
    metadata: dict[str, Any] | None
    record: bytes | None
    yanked: bool
    yanked_reason: str | None
    deleted: bool
    serial: int
    provenance: dict[str, Any] | None = None  # PEP 740 provenance object (PyPI)


@dataclass(frozen=True)
class NewArtifact:
    filename: str
    version: str
    packagetype: str
    sha256: str
    md5: str
    blake2b_256: str
    size: int
    uploader: str
    upload_time: datetime
    subdir: str | None = None
    requires_python: str | None = None
    metadata_sha256: str | None = None
    metadata: dict[str, Any] | None = None
    record: bytes | None = None
    yanked: bool = False  # an upload never is; a promoted file keeps its source's state
    yanked_reason: str | None = None
    provenance: dict[str, Any] | None = None  # PEP 740 provenance object (PyPI)


@dataclass(frozen=True, slots=True)
class StoredParts:
    """A PyPI file's parts of its project's pages, rendered when it is stored (schema.py)."""

    key: bytes
    html: bytes
    json: bytes
    api: bytes


_columns = [*artifacts.c, projects.c.name.label("project")]
_joined = artifacts.join(projects, projects.c.id == artifacts.c.project_id)


def _from_row(row: Row[Any]) -> Artifact:
    t = row.upload_time
    return Artifact(
        id=row.id,
        repository_id=row.repository_id,
        project_id=row.project_id,
        project=row.project,
        filename=row.filename,
        version=row.version,
        packagetype=row.packagetype,
        subdir=row.subdir,
        sha256=row.sha256,
        md5=row.md5,
        blake2b_256=row.blake2b_256,
        size=row.size,
        upload_time=t if t.tzinfo else t.replace(tzinfo=UTC),
        uploader=row.uploader,
        requires_python=row.requires_python,
        metadata_sha256=row.metadata_sha256,
        metadata=row.metadata,
        record=row.record,
        yanked=row.yanked,
        yanked_reason=row.yanked_reason,
        deleted=row.deleted,
        serial=row.serial,
        provenance=row.provenance,
    )


def by_filename(conn: Connection, repo_id: int, filename: str) -> Artifact | None:
    row = conn.execute(
        select(*_columns)
        .select_from(_joined)
        .where(artifacts.c.repository_id == repo_id, artifacts.c.filename == filename)
    ).first()
    return None if row is None else _from_row(row)


def by_sha256(conn: Connection, sha256: str) -> Sequence[Artifact]:
    rows = conn.execute(select(*_columns).select_from(_joined).where(artifacts.c.sha256 == sha256))
    return [_from_row(r) for r in rows]


def for_project(
    conn: Connection, project_id: int, *, include_deleted: bool = False
) -> Sequence[Artifact]:
    query = select(*_columns).select_from(_joined).where(artifacts.c.project_id == project_id)
    if not include_deleted:
        query = query.where(artifacts.c.deleted.is_(False))
    return [_from_row(r) for r in conn.execute(query.order_by(artifacts.c.id))]


def add(
    conn: Connection,
    repo_id: int,
    project_id: int,
    new: NewArtifact,
    serial: int,
    parts: StoredParts | None = None,
) -> int:
    """Add the artifact's row, and its page parts' rows when given (PyPI); its id."""
    added = conn.execute(
        insert(artifacts).values(
            repository_id=repo_id,
            project_id=project_id,
            filename=new.filename,
            version=new.version,
            packagetype=new.packagetype,
            subdir=new.subdir,
            sha256=new.sha256,
            md5=new.md5,
            blake2b_256=new.blake2b_256,
            size=new.size,
            upload_time=new.upload_time,
            uploader=new.uploader,
            requires_python=new.requires_python,
            metadata_sha256=new.metadata_sha256,
            metadata=new.metadata,
            record=new.record,
            yanked=new.yanked,
            yanked_reason=new.yanked_reason if new.yanked else None,
            deleted=False,
            serial=serial,
            provenance=new.provenance,
        )
    )
    assert added.inserted_primary_key is not None
    (artifact_id,) = added.inserted_primary_key
    if parts is not None:
        add_parts(conn, project_id, artifact_id, new, parts)
    return int(artifact_id)


def add_parts(
    conn: Connection, project_id: int, artifact_id: int, new: NewArtifact, parts: StoredParts
) -> None:
    """Store a PyPI file's page parts, rendered from `new` (its row as it stands)."""
    ids = {"project_id": project_id, "artifact_id": artifact_id}
    named = {**ids, "filename": new.filename, "version": new.version, "key": parts.key}
    conn.execute(insert(page_parts).values(**named, html=parts.html, json=parts.json))
    conn.execute(
        insert(api_parts).values(
            **named,
            yanked=new.yanked,
            yanked_reason=new.yanked_reason if new.yanked else None,
            api=parts.api,
        )
    )


def set_yanked(
    conn: Connection, artifact_ids: Sequence[int], yanked: bool, reason: str | None, serial: int
) -> None:
    conn.execute(
        update(artifacts)
        .where(artifacts.c.id.in_(artifact_ids))
        .values(yanked=yanked, yanked_reason=reason if yanked else None, serial=serial)
    )
    drop_parts(conn, artifact_ids)  # they show the yank state: read from the row from now on


def mark_deleted(conn: Connection, artifact_ids: Sequence[int], serial: int) -> None:
    conn.execute(
        update(artifacts)
        .where(artifacts.c.id.in_(artifact_ids))
        .values(deleted=True, serial=serial)
    )
    drop_parts(conn, artifact_ids)


def drop_parts(conn: Connection, artifact_ids: Sequence[int]) -> None:
    """Forget the page parts of these artifacts (rendered again from their rows)."""
    for table in (page_parts, api_parts):
        conn.execute(delete(table).where(table.c.artifact_id.in_(artifact_ids)))


def sha256_in_use(conn: Connection, sha256: str) -> bool:
    row = conn.execute(
        select(artifacts.c.id)
        .where(artifacts.c.deleted.is_(False))
        .where((artifacts.c.sha256 == sha256) | (artifacts.c.metadata_sha256 == sha256))
        .limit(1)
    ).first()
    if row is not None:
        return True
    # a proxy's cached file or index document
    cached = (
        conn.execute(
            select(upstream_files.c.sha256).where(upstream_files.c.sha256 == sha256).limit(1)
        ).first()
        or conn.execute(
            select(upstream_pages.c.key).where(upstream_pages.c.blob_sha256 == sha256).limit(1)
        ).first()
    )
    return cached is not None


def referenced_sha256s(conn: Connection) -> set[str]:
    rows = conn.execute(
        select(artifacts.c.sha256, artifacts.c.metadata_sha256).where(
            artifacts.c.deleted.is_(False)
        )
    )
    found: set[str] = set()
    for row in rows:
        found.add(row.sha256)
        if row.metadata_sha256:
            found.add(row.metadata_sha256)
    found.update(r.sha256 for r in conn.execute(select(upstream_files.c.sha256)))
    found.update(
        r.blob_sha256
        for r in conn.execute(
            select(upstream_pages.c.blob_sha256).where(upstream_pages.c.blob_sha256.is_not(None))
        )
    )
    return found


# -- conda -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CondaChange:
    """An artifact of one conda subdir changed after a given serial (uploaded or deleted)."""

    filename: str
    name: str
    deleted: bool
    serial: int
    record: bytes | None  # the repodata record JSON
    extra: dict[str, Any] | None  # about, post_install, run_exports


def conda_changes(conn: Connection, repo_id: int, subdir: str, since: int) -> list[CondaChange]:
    """Every artifact of the subdir, live or deleted, whose serial is above `since`."""
    rows = conn.execute(
        select(
            artifacts.c.filename,
            projects.c.name,
            artifacts.c.deleted,
            artifacts.c.serial,
            artifacts.c.record,
            artifacts.c.metadata,
        )
        .select_from(_joined)
        .where(
            artifacts.c.repository_id == repo_id,
            artifacts.c.subdir == subdir,
            artifacts.c.serial > since,
        )
        .order_by(artifacts.c.serial)
    )
    return [
        CondaChange(r.filename, r.name, r.deleted, r.serial, r.record, r.metadata) for r in rows
    ]


def conda_subdirs(conn: Connection, repo_id: int) -> list[str]:
    """The subdirs that hold (or held) an artifact of the repository."""
    rows = conn.execute(
        select(artifacts.c.subdir)
        .where(artifacts.c.repository_id == repo_id, artifacts.c.subdir.is_not(None))
        .distinct()
    )
    return sorted(str(r.subdir) for r in rows)
