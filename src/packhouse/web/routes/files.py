"""Files by content: `/files/<sha256>/<filename>` and its PEP 658 `.metadata` twin."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from packhouse.errors import ArtifactNotFound, AuthenticationRequired, PermissionDenied
from packhouse.services.access import Principal
from packhouse.services.pypi_reads import FoundFile
from packhouse.types import Action, Sha256
from packhouse.web.deps import principal, services
from packhouse.wiring import Services

IMMUTABLE = "max-age=31536000, immutable"

_CONTENT_TYPES = {
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".tar.gz": "application/gzip",
    ".conda": "application/octet-stream",
    ".tar.bz2": "application/x-bzip2",
    ".metadata": "text/plain; charset=utf-8",
}


def content_type_of(filename: str) -> str:
    for suffix, kind in _CONTENT_TYPES.items():
        if filename.endswith(suffix):
            return kind
    return "application/octet-stream"


def check_file_access(svc: Services, who: Principal, found: FoundFile) -> bool:
    """Raise unless `who` may read a repository that holds the file or reads through one.
    Returns whether anonymous callers could read it too (for Cache-Control)."""
    readers = {r.id: r for holder in found.holders for r in svc.catalog.readers_of(holder)}
    if any(svc.access.can(who, r, Action.READ) for r in readers.values()):
        return any(svc.access.is_public(r.id) for r in readers.values())
    if who.anonymous:
        raise AuthenticationRequired("this file is not public: send credentials")
    raise PermissionDenied(f"{who.name!r} may not read this file")


async def serve_file(request: Request) -> Response:
    svc = services(request)
    sha256: str = request.path_params["sha256"]
    filename: str = request.path_params["filename"]
    metadata = filename.endswith(".metadata")
    artifact_name = filename.removesuffix(".metadata") if metadata else filename
    who = await principal(request)
    try:
        found = await run_in_threadpool(svc.pypi.find_file, sha256, artifact_name)
    except ArtifactNotFound:
        # Without credentials, "no such file" would tell a stranger which hashes are
        # stored; they get the same 401 as for a private file that exists.
        if who.anonymous:
            raise AuthenticationRequired("this file is not public: send credentials") from None
        raise
    public = check_file_access(svc, who, found)
    blob = found.artifact.sha256
    if metadata:
        if found.artifact.metadata_sha256 is None:
            raise ArtifactNotFound(f"{artifact_name!r} has no metadata file")
        blob = found.artifact.metadata_sha256
    return blob_response(svc, request, Sha256(blob), filename, public)


def blob_response(
    svc: Services, request: Request, sha256: Sha256, filename: str, public: bool
) -> Response:
    headers = {
        "ETag": f'"{sha256}"',
        "Cache-Control": f"{'public' if public else 'private'}, {IMMUTABLE}",
        "Referrer-Policy": "no-referrer",
    }
    if request.headers.get("if-none-match", "").strip() in (f'"{sha256}"', "*"):
        return Response(status_code=304, headers=headers)
    path = svc.ctx.blobs.local_path(sha256)
    if path is not None:
        if not path.is_file():
            raise ArtifactNotFound(f"the bytes of {filename!r} are missing from storage")
        return FileResponse(path, headers=headers, media_type=content_type_of(filename))

    handle = svc.ctx.blobs.open(sha256)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await run_in_threadpool(handle.read, 1024 * 1024):
                yield chunk
        finally:
            handle.close()

    return StreamingResponse(chunks(), headers=headers, media_type=content_type_of(filename))


routes = [Route("/files/{sha256}/{filename}", serve_file, methods=["GET", "HEAD"])]
