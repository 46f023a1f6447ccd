"""The upload APIs of the conda ecosystem's servers, so `rattler-build upload` and
`pixi upload` publish to a Packhouse conda channel unchanged (the channel is the conda
repository of that name; the package lands in the subdir its info/index.json names):

- prefix.dev: `POST /api/v1/upload/<channel>[?force=true]`, `Authorization: Bearer <token>`,
  a multipart form whose `file` part carries `X-File-Name` and `X-File-SHA256` headers.
- quetz: `POST /api/channels/<channel>/upload/<filename>?sha256=<hex>&force=false`,
  `X-API-Key: <token>`, the package as the raw body.

Both answer as those servers do where a client acts on it: 201 for a stored package, 409
for a filename the channel already holds (rattler-build's `--skip-existing` takes a 409 as
"already there"), 401 without valid credentials, 403 without the upload right, and a
checksum that does not match the bytes is refused (quetz's 406; 400 for prefix) with
nothing stored. `force` never replaces a file's bytes: Packhouse keeps each filename's
contents for good (lockfiles and every client's cache pin its sha256), so a forced upload
of the identical file succeeds and one with other bytes is refused with 409, saying why.

The upload itself is `services.conda_uploads.upload_conda`, as for `PUT` and the form
upload of `web/routes/conda.py`; the access checks are the same.
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from packhouse.db.repository_store import Repository
from packhouse.errors import AuthenticationRequired, FileExists, InvalidUpload
from packhouse.services.access import Principal
from packhouse.services.conda_uploads import CondaUploadOutcome, upload_conda
from packhouse.storage.base import IncomingFile
from packhouse.types import Action, Format
from packhouse.web.client import client_address
from packhouse.web.deps import principal, read_form, services
from packhouse.web.routes.conda import _receive as receive_body

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# how FastAPI (quetz) reads a boolean query parameter
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _force(request: Request) -> bool:
    value = request.query_params.get("force")
    if value is None or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    raise InvalidUpload(f"force={value!r} is not a boolean: send force=true or force=false")


def _sha256(value: str | None, where: str) -> str:
    if value is None:
        raise InvalidUpload(f"the request has no {where}: send the package's sha256 in hex")
    if not _SHA256.match(value.strip()):
        raise InvalidUpload(f"{where} is not a sha256 in hex (64 characters 0-9, a-f)")
    return value.strip().lower()


async def _caller(request: Request) -> Principal:
    """Who is calling: quetz's `X-API-Key` holds a Packhouse token; without it, whatever
    credentials the request carries (Bearer, as prefix.dev's clients send, or Basic)."""
    key = request.headers.get("x-api-key")
    if key is None:
        return await principal(request)
    if not key.strip():
        raise AuthenticationRequired("the X-API-Key header is empty: send a Packhouse token")
    svc = services(request)
    bearer = f"Bearer {key.strip()}"
    quick = svc.access.authenticate_cached(bearer)
    if quick is not None:
        return quick
    client = client_address(request)
    return await run_in_threadpool(svc.access.authenticate, bearer, None, client)


async def _channel(request: Request) -> tuple[Repository, Principal]:
    """The channel the path names and the caller, who may upload to it."""
    svc = services(request)
    repo = svc.catalog.get(Format.CONDA, request.path_params["channel"])
    who = await _caller(request)
    svc.access.check(who, repo, Action.UPLOAD)
    return repo, who


async def _store(
    request: Request,
    repo: Repository,
    who: Principal,
    filename: str,
    incoming: IncomingFile,
    sha256: str,
    *,
    force: bool,
    duplicate: str,
    what_to_do: str,
    mismatch_status: int,
) -> Response:
    """Check the checksum, upload, and answer; `incoming` is discarded whatever happens."""
    svc = services(request)
    try:
        if incoming.digests.sha256 != sha256:
            return _checksum_refused(incoming.digests.sha256, sha256, mismatch_status)
        outcome = await run_in_threadpool(upload_conda, svc.ctx, repo, who, filename, incoming)
    except FileExists as error:
        if not force:
            raise
        raise FileExists(
            f"{error.message} (force does not help: Packhouse never replaces the bytes of a"
            " file a channel holds, since lockfiles and caches pin its sha256)"
        ) from None
    finally:
        incoming.discard()
    if not outcome.created and not force:
        raise FileExists(
            f"{duplicate}: {outcome.filename} is already in {outcome.repository}/"
            f"{outcome.subdir} with the same contents; nothing changed ({what_to_do})"
        )
    return _answer(outcome)


def _checksum_refused(actual: str, sent: str, status: int) -> Response:
    text = (
        f"Wrong SHA256 checksum: the body's sha256 is {actual}, the request says {sent};"
        " nothing was stored"
    )
    return JSONResponse({"detail": text}, status_code=status, headers={"Cache-Control": "no-store"})


def _answer(outcome: CondaUploadOutcome) -> Response:
    body = {
        "channel": outcome.repository,
        "subdir": outcome.subdir,
        "filename": outcome.filename,
        "name": outcome.name,
        "version": outcome.version,
        "sha256": outcome.sha256,
        "created": outcome.created,
    }
    status = 201 if outcome.created else 200
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


async def prefix_upload(request: Request) -> Response:
    """prefix.dev's `POST /api/v1/upload/<channel>` (rattler-build, pixi upload prefix)."""
    repo, who = await _channel(request)
    force = _force(request)
    form = await read_form(request, "file")
    try:
        incoming = form.file
        if incoming is None or not form.filename:
            raise InvalidUpload("the form has no 'file' part holding the package")
        if "attestation" in form.fields:
            raise InvalidUpload(
                "Packhouse does not store attestations for conda packages: upload without"
                " --attestation or --generate-attestation"
            )
        filename = form.filename.replace("\\", "/").rsplit("/", 1)[-1]
        named = form.file_headers.get("x-file-name")
        if named is not None and named != filename:
            raise InvalidUpload(
                f"the file part's X-File-Name {named!r} differs from its filename {filename!r}"
            )
        sha256 = _sha256(form.file_headers.get("x-file-sha256"), "X-File-SHA256 header")
    except BaseException:
        form.discard()
        raise
    return await _store(
        request,
        repo,
        who,
        filename,
        incoming,
        sha256,
        force=force,
        duplicate="the package entry already exists",
        what_to_do="rattler-build upload prefix --skip-existing skips such a file",
        mismatch_status=400,
    )


async def quetz_upload(request: Request) -> Response:
    """quetz's `POST /api/channels/<channel>/upload/<filename>` (rattler-build upload quetz)."""
    repo, who = await _channel(request)
    force = _force(request)
    sha256 = _sha256(request.query_params.get("sha256"), "sha256 query parameter")
    incoming = await receive_body(request)
    return await _store(
        request,
        repo,
        who,
        request.path_params["filename"],
        incoming,
        sha256,
        force=force,
        duplicate="Duplicate",
        what_to_do="leave it out of the upload, or build with a new build number",
        mismatch_status=406,  # quetz's answer
    )


routes = [
    Route("/api/v1/upload/{channel}", prefix_upload, methods=["POST"]),
    Route("/api/channels/{channel}/upload/{filename}", quetz_upload, methods=["POST"]),
]
