"""PyPI's JSON API document of a hosted project, joined from each file's stored part.

Every PyPI file's JSON API object is rendered once, when it is stored (`artifacts.page_api`,
with its URL a path: the server's address is put in when the document is joined), beside its
simple-page parts (services/pypi_parts.py). A document is then one read of the project's rows
without their metadata (id, filename, version, yank state, sort key, part), a sort by the
stored byte keys, a grouping into releases, the core metadata of the one file that gives the
`info` block, and a join: the same bytes as `jsonapi.project_json` / `release_json` of the
`JsonProject` the full path builds (tests check it), without reading every file's copy of the
description. A row without a part (stored before migration 0014, not filled yet) is rendered
from its columns. Orders with proxies keep the full path (services/pypi_reads.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, String, select, type_coerce

from packhouse.db import artifact_store, repository_store
from packhouse.db.artifact_store import NewArtifact, StoredParts
from packhouse.db.repository_store import Repository
from packhouse.db.schema import api_parts, artifacts, page_parts, repositories
from packhouse.errors import NotFound
from packhouse.formats.pypi import jsonapi, simple
from packhouse.formats.pypi.metadata import CoreMetadata
from packhouse.services.context import Context
from packhouse.services.pypi_parts import no_parts, page_key, simple_file, timestamp
from packhouse.types import Format

# What the document needs of a file: its stored part and what goes with it, or the columns
# to render one without.
_STORED = (
    api_parts.c.key,
    api_parts.c.filename,
    api_parts.c.version,
    api_parts.c.artifact_id,
    api_parts.c.yanked,
    api_parts.c.yanked_reason,
    api_parts.c.api,
)
_RENDER = (
    artifacts.c.id,
    artifacts.c.filename,
    artifacts.c.version,
    artifacts.c.yanked,
    artifacts.c.yanked_reason,
    artifacts.c.sha256,
    artifacts.c.md5,
    artifacts.c.blake2b_256,
    artifacts.c.size,
    artifacts.c.requires_python,
    type_coerce(artifacts.c.upload_time, String).label("upload_time"),  # see SIMPLE_COLUMNS
)

_METADATA_FIELDS = {f.name for f in dataclasses.fields(CoreMetadata)}


def core_metadata(stored: dict[str, Any] | None) -> CoreMetadata | None:
    """The stored JSON form back into the model (fields added later default)."""
    if not stored:
        return None
    return CoreMetadata(**{k: v for k, v in stored.items() if k in _METADATA_FIELDS})


def json_file(file: Any, origin: str) -> jsonapi.JsonFile:
    """A hosted file (an Artifact, a NewArtifact or a row of _RENDER) as the JSON API shows
    it, its URL below `origin`."""
    return jsonapi.JsonFile(
        filename=file.filename,
        url=f"{origin}/files/{file.sha256}/{file.filename}",
        size=file.size,
        md5=file.md5,
        sha256=file.sha256,
        blake2b_256=file.blake2b_256,
        requires_python=file.requires_python,
        upload_time=timestamp(file.upload_time),
        yanked=file.yanked,
        yanked_reason=file.yanked_reason,
    )


def api_part(file: Any) -> bytes:
    """A file's object in the JSON API documents, its URL the path below the server."""
    return jsonapi.file_json(json_file(file, ""))


def stored_parts(new: NewArtifact) -> StoredParts:
    """The parts of a PyPI file's pages, rendered once as it is stored (services/artifacts.py
    `add_row`), so no read renders them again."""
    file = simple_file(new)
    return StoredParts(
        page_key(new.version), simple.file_html(file), simple.file_json(file), api_part(new)
    )


_UNPARTED = (
    artifacts.c.id,
    artifacts.c.project_id,
    artifacts.c.filename,
    artifacts.c.version,
    artifacts.c.packagetype,
    artifacts.c.sha256,
    artifacts.c.md5,
    artifacts.c.blake2b_256,
    artifacts.c.size,
    type_coerce(artifacts.c.upload_time, String).label("upload_time"),
    artifacts.c.requires_python,
    artifacts.c.metadata_sha256,
    artifacts.c.yanked,
    artifacts.c.yanked_reason,
    artifacts.c.provenance.is_not(None).label("has_provenance"),
)


def fill_parts(
    conn: Connection, artifact_ids: Sequence[int] | None = None, limit: int = 500
) -> int:
    """Render and store the parts of live PyPI files that have none (in an open write
    transaction): the given artifacts (after a yank changed them), or up to `limit` of any
    (stored before migration 0014: `serve` fills them at start, a batch per transaction, and
    a migration that changes how parts are rendered empties the tables for it). Returns how
    many were filled."""
    query = select(*_UNPARTED).where(artifacts.c.deleted.is_(False), no_parts(page_parts))
    if artifact_ids is not None:
        query = query.where(artifacts.c.id.in_(artifact_ids))
    else:
        pypi = select(repositories.c.id).where(repositories.c.format == Format.PYPI.value)
        query = query.where(artifacts.c.repository_id.in_(pypi)).limit(limit)
    filled = 0
    for row in conn.execute(query).all():
        artifact_store.drop_parts(conn, [row.id])  # an api_parts row left alone, if any
        new = NewArtifact(
            filename=row.filename,
            version=row.version,
            packagetype=row.packagetype,
            sha256=row.sha256,
            md5=row.md5,
            blake2b_256=row.blake2b_256,
            size=row.size,
            uploader="",
            upload_time=timestamp(row.upload_time),
            requires_python=row.requires_python,
            metadata_sha256=row.metadata_sha256,
            yanked=row.yanked,
            yanked_reason=row.yanked_reason,
            provenance={} if row.has_provenance else None,  # only its presence is shown
        )
        artifact_store.add_parts(conn, row.project_id, row.id, new, stored_parts(new))
        filled += 1
    return filled


def fill_all_parts(ctx: Context) -> int:
    """`fill_parts` until no live PyPI file lacks parts; returns how many were filled."""
    total = 0
    while True:
        with ctx.db.write() as conn:
            filled = fill_parts(conn)
        total += filled
        if not filled:
            return total


# (page key, filename, version, id, yanked, yanked reason, api part): tuples, not objects,
# because a document may have many thousand.
_File = tuple[bytes, str, str, int, bool, str | None, bytes]


def _files(conn: Connection, project_id: int) -> list[_File]:
    """The project's live files in one repository: their stored parts, then the live files
    without (stored before migration 0014 and not filled yet) rendered from their columns."""
    stored = select(*_STORED).where(api_parts.c.project_id == project_id)
    files: list[_File] = [tuple(r) for r in conn.execute(stored)]
    rows = conn.execute(
        select(*_RENDER).where(
            artifacts.c.project_id == project_id,
            artifacts.c.deleted.is_(False),
            no_parts(api_parts),
        )
    )
    for row in rows:
        files.append(
            (page_key(row.version), row.filename, row.version, row.id, row.yanked,
             row.yanked_reason, api_part(row))
        )  # fmt: skip
    return files


def document(
    conn: Connection,
    order: Sequence[Repository],
    name: str,
    version: str | None,
    base_url: str,
    project_page_url: str,
) -> tuple[bytes | None, int]:
    """The project's document (`version`: that release's), None if it has no live file,
    and its last serial. Raises NotFound for a version it does not have."""
    seen: set[str] = set()
    files: list[_File] = []
    last_serial = 0
    for repo in order:
        project = repository_store.get_project(conn, repo.id, name)
        if project is None:
            continue
        last_serial = max(last_serial, project.last_serial)
        for f in _files(conn, project.id):
            if f[1] not in seen:  # the first repository to hold a filename wins
                seen.add(f[1])
                files.append(f)
    if not files:
        return None, last_serial
    files.sort(key=lambda f: (f[0], f[1]))
    # One release per PEP 440 version (equal keys), named as its first file wrote it.
    releases: list[list[_File]] = []
    for f in files:
        if releases and releases[-1][0][0] == f[0]:
            releases[-1].append(f)
        else:
            releases.append([f])
    if version is None:
        chosen = releases[jsonapi.latest_index([(r[0][2], _yanked(r)) for r in releases])]
    else:
        wanted = page_key(version)
        found = [r for r in releases if r[0][0] == wanted]
        if not found:
            raise NotFound(f"project {name!r} has no release {version!r}")
        chosen = found[0]
    stored = conn.execute(select(artifacts.c.metadata).where(artifacts.c.id == chosen[0][3]))
    release = jsonapi.JsonRelease(
        version=chosen[0][2],
        files=[_yank_state(f) for f in chosen],
        metadata=core_metadata(stored.scalar()),
    )
    head = jsonapi.JsonProject(
        name=name, releases=(), last_serial=last_serial, project_page_url=project_page_url
    )
    by_version = None if version is not None else [(r[0][2], [f[6] for f in r]) for r in releases]
    urls = [f[6] for f in chosen]
    return jsonapi.document_joined(head, release, by_version, urls, base_url), last_serial


def _yanked(release: Sequence[_File]) -> bool:
    return all(f[4] for f in release)


def _yank_state(f: _File) -> jsonapi.JsonFile:
    """A file as `JsonRelease.yanked` and `yanked_reason` read it (nothing else is used)."""
    return jsonapi.JsonFile(
        filename=f[1], url="", size=0, sha256="", upload_time=None, yanked=f[4], yanked_reason=f[5]
    )
