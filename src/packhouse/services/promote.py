"""Promotion: copy a release from one repository to another (devpi's staging workflow).

`promote` copies every live file of a release (PyPI: a project at a version; conda: a
package name at a version, in every subdir or one) from a source repository to a hosted
target of the same format. No bytes are copied: an artifact points at its blobs by sha256,
so the target's row points at the same blobs. Each file keeps its filename, metadata, conda
record, `requires_python`, PEP 658 metadata file and yank state; its uploader is whoever
promoted it and its upload time the moment of promotion. Each copied file is one journal
entry (action `promote`, detail naming the source).

All or nothing: the plan is made and checked in full before anything is written, then made
again inside the one write transaction that adds every row (writers are serialised), so a
change that ran in between is caught and nothing is stored. A file already in the target
with the same bytes is skipped; one with other bytes, in another subdir, or a deleted
filename (filenames are never reused) refuses the whole promotion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from sqlalchemy import Connection

from packhouse.db import artifact_store, repository_store
from packhouse.db.artifact_store import Artifact, NewArtifact
from packhouse.db.repository_store import Repository
from packhouse.errors import ArtifactNotFound, FileExists, InvalidInput, PermissionDenied
from packhouse.formats.conda.names import subdir_problems
from packhouse.services import artifacts
from packhouse.services.context import Context
from packhouse.types import Format, RepoKind, Sha256

__all__ = ["PromotedFile", "Promotion", "Release", "promote"]


@dataclass(frozen=True)
class Release:
    """What to promote: a project (PyPI) or package (conda) at one version; for conda
    optionally only the files of one subdir."""

    name: str
    version: str
    subdir: str | None = None


@dataclass(frozen=True)
class PromotedFile:
    filename: str
    sha256: str
    subdir: str | None


@dataclass(frozen=True)
class Promotion:
    source: str  # FORMAT/NAME
    target: str
    project: str  # normalised (PyPI) or the conda package name
    version: str
    copied: tuple[PromotedFile, ...]
    skipped: tuple[PromotedFile, ...]  # already in the target with the same bytes


@dataclass(frozen=True)
class _Plan:
    project: str
    display_name: str
    copy: tuple[Artifact, ...]
    skip: tuple[Artifact, ...]


def promote(
    ctx: Context, source: Repository, target: Repository, release: Release, *, actor: str
) -> Promotion:
    """Copy the release's live files from `source` to `target` (permissions are the
    caller's to check: read on the source, upload on the target)."""
    _check_repositories(source, target, release)
    with ctx.db.read() as conn:
        _plan(conn, source, target, release)  # refuse early, without taking the write lock
    with ctx.db.write() as conn:
        plan = _plan(conn, source, target, release)
        _check_blobs(ctx, source, plan.copy)
        now = ctx.clock()
        for found in plan.copy:
            artifacts.add_row(
                conn,
                target,
                actor,
                artifacts.PendingArtifact(
                    new=_copy_of(found, actor, now),
                    project=plan.project,
                    display_name=plan.display_name,
                    detail={
                        "from": source.qualified_name,
                        **({"subdir": found.subdir} if found.subdir else {}),
                    },
                ),
                action="promote",
            )
    return Promotion(
        source=source.qualified_name,
        target=target.qualified_name,
        project=plan.project,
        version=release.version,
        copied=tuple(_file(a) for a in plan.copy),
        skipped=tuple(_file(a) for a in plan.skip),
    )


def _check_repositories(source: Repository, target: Repository, release: Release) -> None:
    if source.format is not target.format:
        raise InvalidInput(
            f"{source.qualified_name} and {target.qualified_name} hold different formats:"
            " promote between repositories of one format"
        )
    if source.id == target.id:
        raise InvalidInput(f"{source.qualified_name} is both the source and the target")
    if target.kind is not RepoKind.HOSTED:
        raise PermissionDenied(
            f"{target.qualified_name} is a {target.kind} repository: promote to a hosted one"
        )
    if not target.uploads_enabled:
        raise PermissionDenied(
            f"uploads to {target.qualified_name} are switched off: nothing can be promoted to it"
        )
    if release.subdir is not None:
        if source.format is not Format.CONDA:
            raise InvalidInput("a subdir narrows a conda promotion; PyPI releases have none")
        if subdir_problems(release.subdir):
            raise InvalidInput("; ".join(subdir_problems(release.subdir)))
    if not release.name.strip() or not release.version.strip():
        raise InvalidInput("name the project (or conda package) and the version to promote")


def _plan(conn: Connection, source: Repository, target: Repository, release: Release) -> _Plan:
    name = canonicalize_name(release.name) if source.format is Format.PYPI else release.name
    what = _describe(source, release)
    project = repository_store.get_project(conn, source.id, name)
    found = [] if project is None else artifact_store.for_project(conn, project.id)
    chosen = [
        a
        for a in found
        if _same_version(source.format, a.version, release.version)
        and (release.subdir is None or a.subdir == release.subdir)
    ]
    if project is None or not chosen:
        raise ArtifactNotFound(f"nothing to promote: there is no {what} in {source.name!r}")
    copy: list[Artifact] = []
    skip: list[Artifact] = []
    problems: list[str] = []
    for a in chosen:
        held = artifact_store.by_filename(conn, target.id, a.filename)
        if held is None:
            copy.append(a)
        elif held.deleted:
            problems.append(
                f"{a.filename!r} was deleted from {target.name!r} and a filename is never used"
                " again"
            )
        elif held.subdir != a.subdir:
            problems.append(
                f"{a.filename!r} is already in {target.name}/{held.subdir}, not in {a.subdir}"
            )
        elif held.sha256 != a.sha256:
            problems.append(f"{a.filename!r} is already in {target.name!r} with different bytes")
        else:
            skip.append(a)
    if problems:
        raise FileExists(
            f"cannot promote {what} from {source.name!r} to {target.name!r}, nothing was"
            f" copied: {'; '.join(problems)}; publish a new version (conda: a new build) instead"
        )
    return _Plan(project.name, project.display_name, tuple(copy), tuple(skip))


def _check_blobs(ctx: Context, source: Repository, chosen: tuple[Artifact, ...]) -> None:
    """Every blob the copies point at is stored. The source rows are live in this write
    transaction, so no delete can drop them before the copies reference them too."""
    missing = [
        a.filename
        for a in chosen
        if not ctx.blobs.exists(Sha256(a.sha256))
        or (a.metadata_sha256 is not None and not ctx.blobs.exists(Sha256(a.metadata_sha256)))
    ]
    if missing:
        raise ArtifactNotFound(
            f"the stored bytes of {', '.join(missing)} in {source.name!r} are missing, so"
            " nothing was promoted: run `packhouse fsck` to see what else is missing"
        )


def _copy_of(a: Artifact, actor: str, now: datetime) -> NewArtifact:
    return NewArtifact(
        filename=a.filename,
        version=a.version,
        packagetype=a.packagetype,
        sha256=a.sha256,
        md5=a.md5,
        blake2b_256=a.blake2b_256,
        size=a.size,
        uploader=actor,
        upload_time=now,
        subdir=a.subdir,
        requires_python=a.requires_python,
        metadata_sha256=a.metadata_sha256,
        metadata=a.metadata,
        record=a.record,
        yanked=a.yanked,
        yanked_reason=a.yanked_reason,
        provenance=a.provenance,  # PEP 740: the attestations are about these bytes
    )


def _same_version(fmt: Format, found: str, wanted: str) -> bool:
    if fmt is Format.CONDA:
        return found == wanted
    try:
        return Version(found) == Version(wanted)
    except InvalidVersion:
        return found == wanted


def _describe(repo: Repository, release: Release) -> str:
    if repo.format is Format.PYPI:
        return f"project {release.name!r} at version {release.version!r}"
    where = f" in subdir {release.subdir!r}" if release.subdir else ""
    return f"conda package {release.name!r} at version {release.version!r}{where}"


def _file(a: Artifact) -> PromotedFile:
    return PromotedFile(a.filename, a.sha256, a.subdir)
