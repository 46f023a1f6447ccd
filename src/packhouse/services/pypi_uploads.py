"""Uploads to a hosted PyPI repository (the legacy upload API's `file_upload`).

The file has already been streamed to a local IncomingFile (hashed, size-capped) by the web
layer. Here it is checked against the form, read (never trusting the form's metadata),
committed blob first, then in one database transaction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from sqlalchemy import Connection

from packhouse.db import oidc_store
from packhouse.db.artifact_store import Artifact, NewArtifact
from packhouse.db.repository_store import Repository
from packhouse.errors import FileExists, InvalidUpload, PermissionDenied
from packhouse.formats.pypi import attestations
from packhouse.formats.pypi.archives import ArchiveLimits, read_metadata
from packhouse.formats.pypi.attestations import parse_attestations
from packhouse.formats.pypi.filenames import DistFilename, parse_dist_filename
from packhouse.formats.pypi.metadata import check_matches_filename, parse_core_metadata
from packhouse.services import artifacts
from packhouse.services.access import Principal
from packhouse.services.context import Context
from packhouse.services.pypi_releases import release_version
from packhouse.storage.base import IncomingFile
from packhouse.types import RepoKind, Sha256

_FILETYPES = {"bdist_wheel": "wheel", "sdist": "sdist"}
_HEX = re.compile(r"[0-9a-f]+")

# Fields the legacy upload API sends once per value (twine, uv publish, Warehouse's form):
# core metadata's multiple-use fields. Any other field sent twice is refused, since which
# value counts would be a guess (the name checked against the file, say, or a digest).
MULTI_VALUED_FIELDS = frozenset(
    {
        "classifiers",
        "platform",
        "supported_platform",
        "requires_dist",
        "provides_dist",
        "obsoletes_dist",
        "requires_external",
        "project_urls",
        "provides_extra",
        "provides_extras",
        "dynamic",
        "license_file",
        "license_files",
        "requires",
        "provides",
        "obsoletes",
    }
)


@dataclass(frozen=True)
class UploadOutcome:
    repository: str
    project: str
    version: str
    filename: str
    sha256: str
    created: bool  # False: the identical file was already there; nothing changed


def upload_pypi(
    ctx: Context,
    repo: Repository,
    principal: Principal,
    fields: Mapping[str, str],
    filename: str | None,
    incoming: IncomingFile | None,
    repeated: Collection[str] = (),
) -> UploadOutcome:
    """`repeated`: the names of the form's fields sent more than once."""
    if repo.kind is not RepoKind.HOSTED or not repo.uploads_enabled:
        raise PermissionDenied(f"uploads to the repository {repo.name!r} are switched off")
    twice = sorted(set(repeated) - MULTI_VALUED_FIELDS)
    if twice:
        raise InvalidUpload(
            [f"the form has the field {name!r} more than once; send it once" for name in twice]
        )
    dist = _check_form(fields, filename, incoming)
    assert incoming is not None
    digests = incoming.digests
    raw_metadata = read_metadata(incoming.path, dist, ArchiveLimits())
    metadata = parse_core_metadata(raw_metadata)
    check_matches_filename(metadata, dist)

    found = artifacts.existing(ctx, repo, dist.filename)
    if found is not None:
        return _same_or_refuse(repo, found, digests.sha256)
    provenance = _provenance(ctx, principal, fields.get("attestations"), dist, digests.sha256)
    # the release rules, checked before anything is stored, and again when it is committed
    with ctx.db.read() as conn:
        version = release_version(conn, repo.id, dist, str(dist.version))

    # PEP 658 metadata files are served for wheels only: an sdist's PKG-INFO may not be
    # what building it produces (PyPI does the same).
    metadata_sha: Sha256 | None = None
    if dist.kind == "wheel":
        metadata_sha = Sha256(hashlib.sha256(raw_metadata).hexdigest())
    new = NewArtifact(
        filename=dist.filename,
        version=version,
        packagetype=dist.kind,
        sha256=digests.sha256,
        md5=digests.md5,
        blake2b_256=digests.blake2b_256,
        size=digests.size,
        uploader=principal.name,
        upload_time=ctx.clock(),
        requires_python=metadata.requires_python,
        metadata_sha256=metadata_sha,
        metadata=_jsonable(dataclasses.asdict(metadata)),
        provenance=provenance,
    )
    pending = artifacts.PendingArtifact(
        new=new,
        project=dist.name,
        display_name=metadata.name,
        files={digests.sha256: incoming.path},
        data={metadata_sha: raw_metadata} if metadata_sha else {},
        guard=lambda conn, pending: _release_guard(conn, repo, dist, pending),
    )
    winner = artifacts.commit(ctx, repo, principal.name, pending)
    if winner is not None:
        return _same_or_refuse(repo, winner, digests.sha256)
    return UploadOutcome(repo.name, dist.name, version, dist.filename, digests.sha256, True)


def _provenance(
    ctx: Context, principal: Principal, field: str | None, dist: DistFilename, sha256: str
) -> dict[str, Any] | None:
    """The PEP 740 provenance object of the form's `attestations`, or None without them.
    Attestations are taken from trusted publishers only (as PyPI does): the provenance
    names the publisher, which a password or an API token does not identify."""
    if field is None or not field.strip():
        return None
    if principal.publisher_id is None:
        raise InvalidUpload(
            "attestations are taken only from uploads made by trusted publishing (the"
            " provenance names the publisher); upload without them, or publish from CI"
            " with a publisher (docs/publishing.md)"
        )
    found = parse_attestations(field, dist.filename, sha256)
    with ctx.db.read() as conn:
        publisher = oidc_store.get_publisher(conn, principal.publisher_id)
        issuer = oidc_store.get_issuer(conn, publisher.issuer_id)
    if ctx.settings.attestations_verify:
        from packhouse.services.attestation_verify import verify

        verify(found, dist.filename, sha256, issuer.url, publisher.claims)
    return attestations.provenance(found, {"kind": publisher.issuer_name, **publisher.claims})


def _release_guard(
    conn: Connection, repo: Repository, dist: DistFilename, pending: artifacts.PendingArtifact
) -> artifacts.PendingArtifact:
    version = release_version(conn, repo.id, dist, str(dist.version))
    if version == pending.new.version:
        return pending
    return dataclasses.replace(pending, new=dataclasses.replace(pending.new, version=version))


def _check_form(
    fields: Mapping[str, str], filename: str | None, incoming: IncomingFile | None
) -> DistFilename:
    action = fields.get(":action")
    if action != "file_upload":
        raise InvalidUpload(
            f"unsupported ':action' {action!r}: this server accepts only 'file_upload'"
            if action
            else "the form has no ':action' field; send ':action=file_upload'"
        )
    problems: list[str] = []
    if incoming is None or filename is None:
        problems.append("the form has no 'content' file field holding the distribution")
    for required in ("name", "version"):
        if not fields.get(required, "").strip():
            problems.append(f"the form has no '{required}' field")
    if problems:
        raise InvalidUpload(problems)
    assert incoming is not None
    assert filename is not None
    dist = parse_dist_filename(filename)

    name = fields["name"].strip()
    if canonicalize_name(name) != dist.name:
        problems.append(f"the form's name {name!r} does not match the filename {filename!r}")
    try:
        if Version(fields["version"].strip()) != dist.version:
            problems.append(
                f"the form's version {fields['version']!r} does not match the filename {filename!r}"
            )
    except InvalidVersion:
        problems.append(f"the form's version {fields['version']!r} is not a valid version")
    filetype = fields.get("filetype")
    if filetype and _FILETYPES.get(filetype, filetype) != dist.kind:
        problems.append(f"the form's filetype {filetype!r} does not fit the file {filename!r}")

    sent = {
        "sha256_digest": incoming.digests.sha256,
        "md5_digest": incoming.digests.md5,
        "blake2_256_digest": incoming.digests.blake2b_256,
    }
    for field, actual in sent.items():
        claimed = fields.get(field, "").strip().lower()
        if claimed and not (claimed.isascii() and _HEX.fullmatch(claimed)):
            problems.append(
                f"the {field} sent is not a hexadecimal digest; send the {len(actual)}"
                " hex digits of the file's digest, or leave the field out"
            )
        elif claimed and not hmac.compare_digest(claimed, actual):
            problems.append(
                f"the {field} sent ({claimed}) does not match the uploaded file ({actual}):"
                " the file was changed or cut short on the way"
            )
    if problems:
        raise InvalidUpload(problems)
    return dist


def _same_or_refuse(repo: Repository, existing: Artifact, sha256: str) -> UploadOutcome:
    if existing.deleted:
        raise FileExists(
            f"the file {existing.filename!r} was deleted from {repo.name!r} and its name can't"
            " be used again; upload a new version instead"
        )
    if existing.sha256 != sha256:
        raise FileExists(
            f"file already exists: {existing.filename!r} is in {repo.name!r} with different"
            " contents; upload a new version instead"
        )
    return UploadOutcome(
        repo.name, existing.project, existing.version, existing.filename, sha256, False
    )


def _jsonable(value: object) -> dict[str, object]:
    """Core metadata as plain JSON types (tuples become lists)."""
    import orjson

    result: dict[str, object] = orjson.loads(orjson.dumps(value, default=str))
    return result
