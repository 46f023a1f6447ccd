"""Uploads to a hosted conda channel, and a subdir's repodata patch instructions.

The package has already been streamed to a local IncomingFile (hashed, size-capped) by the
web layer. Here it is read and validated (`formats.conda`: only `info/`, within limits),
its repodata record serialised once, then committed by `services.artifacts`: blob first,
then one database transaction. A refused package leaves no row and, but for a lost race
with an upload of the same filename, no blob.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from packhouse.db import conda_patch_store, journal_store, repository_store
from packhouse.db.artifact_store import Artifact, NewArtifact
from packhouse.db.repository_store import Repository
from packhouse.errors import FileExists, InvalidUpload, PackhouseError, PermissionDenied
from packhouse.formats.conda.archive import Digests, Limits, read_package
from packhouse.formats.conda.names import parse_filename, subdir_problems
from packhouse.formats.conda.patches import load_patch_instructions
from packhouse.formats.conda.records import make_record, with_indexed_timestamp
from packhouse.services import artifacts, streamed_checks
from packhouse.services.access import Principal
from packhouse.services.context import Context
from packhouse.storage.base import IncomingFile
from packhouse.types import RepoKind

__all__ = [
    "CondaUploadOutcome",
    "check_subdir",
    "set_patch_instructions",
    "subdir_of",
    "upload_conda",
]

# conda's own names for old index.json `arch` values (conda/models/enums.py, Arch).
_ARCH_SUFFIX = {"x86": "32", "x86_64": "64"}


@dataclass(frozen=True)
class CondaUploadOutcome:
    repository: str
    subdir: str
    name: str
    version: str
    filename: str
    sha256: str
    created: bool  # False: the identical file was already there; nothing changed


def check_subdir(subdir: str) -> str:
    problems = subdir_problems(subdir)
    if problems:
        raise InvalidUpload(problems)
    return subdir


def subdir_of(index: Mapping[str, Any]) -> str | None:
    """The subdir index.json names; old packages name only `platform` and `arch`."""
    subdir = index.get("subdir")
    if isinstance(subdir, str):
        return subdir
    if index.get("noarch"):
        return "noarch"
    platform, arch = index.get("platform"), index.get("arch")
    if isinstance(platform, str) and isinstance(arch, str):
        guess = f"{platform}-{_ARCH_SUFFIX.get(arch, arch)}"
        return guess if not subdir_problems(guess) else None
    return None


def _check_repo(repo: Repository) -> None:
    if repo.kind is not RepoKind.HOSTED or not repo.uploads_enabled:
        raise PermissionDenied(f"uploads to the conda channel {repo.name!r} are switched off")


def upload_conda(
    ctx: Context,
    repo: Repository,
    principal: Principal,
    filename: str,
    incoming: IncomingFile,
    subdir: str | None = None,
) -> CondaUploadOutcome:
    """Store one package. `subdir` is where it was sent (PUT); None takes index.json's."""
    _check_repo(repo)
    if parse_filename(filename) is None:
        raise InvalidUpload(
            f"{filename!r} is not a conda package filename: expected"
            " '<name>-<version>-<build>.conda' or '<name>-<version>-<build>.tar.bz2'"
        )
    if subdir is not None:
        check_subdir(subdir)
    sent = incoming.digests
    digests = Digests(md5=sent.md5, sha256=sent.sha256, size=sent.size)
    try:
        # a .tar.bz2 is read as it arrives (services/streamed_checks.py)
        key = streamed_checks.conda_key(filename, Limits())
        walked = streamed_checks.result(incoming, key, lambda: None)
        contents = read_package(
            incoming.path, filename, subdir=subdir, digests=digests, members=walked
        )
    except PackhouseError:
        raise
    except Exception as error:  # a damaged archive the readers did not foresee
        raise InvalidUpload(
            f"{filename}: the package cannot be read ({type(error).__name__}: {error})"
        ) from error
    target = subdir or subdir_of(contents.index)
    if target is None:
        raise InvalidUpload(
            f"{filename}: info/index.json names no subdir (nor platform and arch); upload it with"
            f" PUT /conda/{repo.name}/<subdir>/{filename}"
        )
    record = make_record(contents)

    found = artifacts.existing(ctx, repo, filename)
    if found is not None:
        return _same_or_refuse(repo, found, target, sent.sha256)

    upload_time = ctx.clock()
    # CEP 47: the moment the package enters this channel, in milliseconds, kept in the stored
    # record so repodata, shards and current_repodata serve it as stored; patches can't move it.
    record_json = with_indexed_timestamp(record.record_json, int(upload_time.timestamp() * 1000))
    new = NewArtifact(
        filename=filename,
        version=record.version,
        packagetype="conda" if filename.endswith(".conda") else "tar.bz2",
        sha256=sent.sha256,
        md5=sent.md5,
        blake2b_256=sent.blake2b_256,
        size=sent.size,
        uploader=principal.name,
        upload_time=upload_time,
        subdir=target,
        metadata=orjson.loads(record.extra_json),
        record=record_json,
    )
    pending = artifacts.PendingArtifact(
        new=new,
        project=record.name,
        display_name=record.name,
        files={sent.sha256: incoming.path},
        detail={"subdir": target},
    )
    winner = artifacts.commit(ctx, repo, principal.name, pending)
    if winner is not None:
        return _same_or_refuse(repo, winner, target, sent.sha256)
    return CondaUploadOutcome(
        repo.name, target, record.name, record.version, filename, sent.sha256, True
    )


def _same_or_refuse(
    repo: Repository, existing: Artifact, subdir: str, sha256: str
) -> CondaUploadOutcome:
    if existing.deleted:
        raise FileExists(
            f"the file {existing.filename!r} was deleted from the conda channel {repo.name!r}"
            " and its name can't be used again; build it with a new build number instead"
        )
    if existing.subdir != subdir:
        raise FileExists(
            f"a file named {existing.filename!r} is already in {repo.name}/{existing.subdir};"
            " a channel holds each filename once"
        )
    if existing.sha256 != sha256:
        raise FileExists(
            f"file already exists: {existing.filename!r} is in {repo.name}/{subdir} with"
            " different contents; build it with a new build number instead"
        )
    return CondaUploadOutcome(
        repo.name, subdir, existing.project, existing.version, existing.filename, sha256, False
    )


def set_patch_instructions(
    ctx: Context, repo: Repository, principal: Principal, subdir: str, data: bytes
) -> int:
    """Replace a subdir's patch instructions (an admin's call); returns the journal serial.

    Served repodata.json (and shards, current_repodata.json, channeldata.json) is patched
    from then on; repodata_from_packages.json never is.
    """
    check_subdir(subdir)
    instructions: dict[str, Any] = load_patch_instructions(data)
    stamped = [
        f"{section}.{filename}.indexed_timestamp"
        for section in ("packages", "packages.conda")
        for filename, changes in instructions.get(section, {}).items()
        if "indexed_timestamp" in changes
    ]
    if stamped:
        raise InvalidUpload(
            [
                f"{where} cannot be patched: the channel sets it when a package enters (CEP 47)"
                for where in stamped
            ]
        )
    with ctx.db.write() as conn:
        serial = journal_store.append(
            conn,
            actor=principal.name,
            action="conda.patch",
            repository=repo.qualified_name,
            detail={"subdir": subdir},
        )
        conda_patch_store.put(conn, repo.id, subdir, instructions, serial)
        repository_store.touch(conn, repo.id, serial)
    return serial
