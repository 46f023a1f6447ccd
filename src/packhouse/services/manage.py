"""Yank, unyank and delete files or whole versions. Each is one journal entry.

A deleted file stays as a tombstone so its filename can never be uploaded again; its blob
is removed when nothing else references the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from packhouse.db import artifact_store, journal_store, repository_store, search_store
from packhouse.db.artifact_store import Artifact
from packhouse.db.repository_store import Repository
from packhouse.errors import ArtifactNotFound, InvalidInput, ProjectNotFound
from packhouse.services import artifacts, pypi_api
from packhouse.services.context import Context
from packhouse.types import Format


@dataclass(frozen=True)
class Target:
    """A whole version (`filename` None) or one file of a project."""

    project: str
    version: str | None = None
    filename: str | None = None


def _select(ctx: Context, repo: Repository, target: Target) -> list[Artifact]:
    name = canonicalize_name(target.project) if repo.format is Format.PYPI else target.project
    with ctx.db.read() as conn:
        project = repository_store.get_project(conn, repo.id, name)
        if project is None:
            raise ProjectNotFound(f"there is no project {target.project!r} in {repo.name!r}")
        live = artifact_store.for_project(conn, project.id)
    if target.filename is not None:
        chosen = [a for a in live if a.filename == target.filename]
        what = f"file {target.filename!r}"
    elif target.version is not None:
        chosen = [a for a in live if _same_version(a.version, target.version)]
        what = f"version {target.version!r}"
    else:
        raise InvalidInput("name a version or a file")
    if not chosen:
        raise ArtifactNotFound(f"there is no {what} of {target.project!r} in {repo.name!r}")
    return chosen


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def set_yanked(
    ctx: Context,
    repo: Repository,
    target: Target,
    *,
    actor: str,
    yanked: bool,
    reason: str | None = None,
) -> list[str]:
    if repo.format is Format.CONDA:
        raise InvalidInput(
            "conda channels have no yank: delete the file instead (it moves to repodata's"
            " `removed` list), or upload patch instructions that change its record"
        )
    chosen = _select(ctx, repo, target)
    with ctx.db.write() as conn:
        serial = journal_store.append(
            conn,
            actor=actor,
            action="yank" if yanked else "unyank",
            repository=repo.qualified_name,
            project=chosen[0].project,
            filename=target.filename,
            detail={"version": target.version, "reason": reason},
        )
        artifact_store.set_yanked(conn, [a.id for a in chosen], yanked, reason, serial)
        pypi_api.fill_parts(conn, [a.id for a in chosen])  # their pages' parts show the yank
        search_store.refresh(conn, {a.project_id for a in chosen})
        repository_store.ensure_project(conn, repo.id, chosen[0].project, chosen[0].project, serial)
        repository_store.touch(conn, repo.id, serial)
    return [a.filename for a in chosen]


def delete(ctx: Context, repo: Repository, target: Target, *, actor: str) -> list[str]:
    chosen = _select(ctx, repo, target)
    with ctx.db.write() as conn:
        serial = journal_store.append(
            conn,
            actor=actor,
            action="delete",
            repository=repo.qualified_name,
            project=chosen[0].project,
            filename=target.filename,
            detail={"version": target.version, "files": [a.filename for a in chosen]},
        )
        artifact_store.mark_deleted(conn, [a.id for a in chosen], serial)
        search_store.refresh(conn, {a.project_id for a in chosen})
        repository_store.ensure_project(conn, repo.id, chosen[0].project, chosen[0].project, serial)
        repository_store.touch(conn, repo.id, serial)
    artifacts.drop_unreferenced(
        ctx, [a.sha256 for a in chosen] + [a.metadata_sha256 for a in chosen if a.metadata_sha256]
    )
    return [a.filename for a in chosen]
