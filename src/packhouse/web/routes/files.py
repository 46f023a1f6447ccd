"""Files by content: `/files/<sha256>/<filename>` and its PEP 658 `.metadata` twin; and
`/files/upstream/<filename>`, a file a PyPI proxy lists without a sha256 (not fetched yet:
services/pypi_proxy.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from packhouse.db.repository_store import Repository
from packhouse.errors import (
    ArtifactNotFound,
    AuthenticationRequired,
    PermissionDenied,
    UpstreamError,
)
from packhouse.services.access import Principal
from packhouse.services.pypi_proxy import ListedFile
from packhouse.services.pypi_reads import FoundFile, ProxiedFile
from packhouse.services.upstream_cache import Download, StoredFile
from packhouse.types import Action, Format, RepoKind, Sha256
from packhouse.web.deps import principal, services
from packhouse.web.downloads import count_download
from packhouse.web.errors import ResponseCutShort
from packhouse.wiring import Services

IMMUTABLE = "max-age=31536000, immutable"
UNHASHED = "upstream"  # /files/upstream/<filename> (never a sha256)

log = logging.getLogger("packhouse.web")

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


def check_file_access(
    svc: Services, who: Principal, found: FoundFile | ProxiedFile | ListedFile
) -> bool:
    """Raise unless `who` may read a repository that holds the file or reads through one.
    Returns whether anonymous callers could read it too (for Cache-Control)."""
    readers = {r.id: r for holder in found.holders for r in svc.catalog.readers_of(holder)}
    if any(svc.access.can(who, r, Action.READ) for r in readers.values()):
        return any(svc.access.is_public(r.id) for r in readers.values())
    if who.anonymous:
        raise AuthenticationRequired("this file is not public: send credentials")
    holder = found.holders[0].qualified_name if found.holders else "REPO"
    raise PermissionDenied(
        f"{who.name!r} may not read this file; an administrator grants read on a repository"
        f" that holds it: `packhouse repo grant {holder} {who.name} read`"
    )


def _may_read(svc: Services, who: Principal, holder: Repository) -> bool:
    return any(svc.access.can(who, r, Action.READ) for r in svc.catalog.readers_of(holder))


async def serve_file(request: Request) -> Response:
    svc = services(request)
    sha256: str = request.path_params["sha256"]
    filename: str = request.path_params["filename"]
    metadata = filename.endswith(".metadata")
    provenance = filename.endswith(".provenance")  # PEP 740, hosted files only
    artifact_name = filename.removesuffix(".metadata") if metadata else filename
    artifact_name = artifact_name.removesuffix(".provenance") if provenance else artifact_name
    who = await principal(request)
    if sha256 == UNHASHED:
        return await _serve_listed(svc, request, who, filename)
    try:
        found = await run_in_threadpool(svc.pypi.find_file, sha256, artifact_name)
    except ArtifactNotFound:
        if provenance:
            if who.anonymous:
                raise AuthenticationRequired("this file is not public: send credentials") from None
            raise
        proxied = await run_in_threadpool(
            svc.pypi.find_proxied, sha256, artifact_name, metadata, partial(_may_read, svc, who)
        )
        if proxied is not None:
            public = check_file_access(svc, who, proxied)
            if request.method == "HEAD":
                stored = await run_in_threadpool(proxied.fetch)
                return await blob_response(svc, request, stored.sha256, filename, public)
            started = await run_in_threadpool(proxied.start)
            if isinstance(started, StoredFile):
                return await blob_response(svc, request, started.sha256, filename, public)
            return _passing_on(started, _file_headers(Sha256(sha256), public), filename)
        # Without credentials, "no such file" would tell a stranger which hashes are
        # stored; they get the same 401 as for a private file that exists.
        if who.anonymous:
            raise AuthenticationRequired("this file is not public: send credentials") from None
        raise
    public = check_file_access(svc, who, found)
    if provenance:
        if found.artifact.provenance is None:
            raise ArtifactNotFound(f"{artifact_name!r} has no provenance (no attestations)")
        return JSONResponse(
            found.artifact.provenance,
            headers={"Cache-Control": f"{'public' if public else 'private'}, {IMMUTABLE}"},
        )
    blob = found.artifact.sha256
    if not metadata:
        count_download(request, found.artifact.id)
    if metadata:
        if found.artifact.metadata_sha256 is None:
            raise ArtifactNotFound(f"{artifact_name!r} has no metadata file")
        blob = found.artifact.metadata_sha256
    return await blob_response(svc, request, Sha256(blob), filename, public)


async def _serve_listed(svc: Services, request: Request, who: Principal, filename: str) -> Response:
    """A file a PyPI proxy the caller may read lists without a sha256: the kept copy, or
    fetched now (checked against the md5 the upstream gave, if any). Not immutable: the
    URL names no content (what is kept stays, until `cache prune` forgets it)."""
    proxies = [
        r
        for r in svc.catalog.all(Format.PYPI)
        if r.kind is RepoKind.PROXY and _may_read(svc, who, r)
    ]
    listed = await run_in_threadpool(svc.pypi.proxy.listed, proxies, filename)
    if listed is None:
        if who.anonymous:  # the same answer as for a private file, as above
            raise AuthenticationRequired("this file is not public: send credentials")
        raise ArtifactNotFound(f"no proxy you may read lists a file {filename!r}")
    public = check_file_access(svc, who, listed)
    started = await run_in_threadpool(listed.fetch if request.method == "HEAD" else listed.start)
    if isinstance(started, StoredFile):
        return await blob_response(svc, request, started.sha256, filename, public, False)
    headers = _file_headers(None, public, immutable=False)
    return _passing_on(started, headers, filename)


def _passing_on(download: Download, headers: dict[str, str], filename: str) -> Response:
    """A file's first download from the upstream, sent on as it arrives while it is stored.
    If its bytes turn out not to match the hash the upstream's index gave, nothing is kept
    and the response is cut short, so the client sees a failed download, never a bad one.
    A client that goes away does not end the fetch: it completes in the background and the
    file is kept (services/upstream_download.py), so the client's retry is a cache hit."""
    if download.size is not None:
        headers = {**headers, "Content-Length": str(download.size)}

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                chunk = await run_in_threadpool(download.next_chunk)
                if chunk is None:
                    return
                yield chunk
        except UpstreamError as exc:
            log.warning("%s; the response to the client was cut short", exc.message)
            raise ResponseCutShort from None
        finally:
            download.abandon()  # a no-op when it is over (kept, or failed)

    return StreamingResponse(chunks(), headers=headers, media_type=content_type_of(filename))


def _file_headers(sha256: Sha256 | None, public: bool, immutable: bool = True) -> dict[str, str]:
    lasting = IMMUTABLE if immutable else "no-cache"
    headers = {
        "Cache-Control": f"{'public' if public else 'private'}, {lasting}",
        "Referrer-Policy": "no-referrer",
    }
    if sha256 is not None:
        headers["ETag"] = f'"{sha256}"'
    return headers


async def blob_response(
    svc: Services,
    request: Request,
    sha256: Sha256,
    filename: str,
    public: bool,
    immutable: bool = True,
) -> Response:
    headers = _file_headers(sha256, public, immutable)
    if request.headers.get("if-none-match", "").strip() in (f'"{sha256}"', "*"):
        return Response(status_code=304, headers=headers)
    path = svc.ctx.blobs.local_path(sha256)
    if path is not None:
        if not path.is_file():
            raise ArtifactNotFound(f"the bytes of {filename!r} are missing from storage")
        return FileResponse(path, headers=headers, media_type=content_type_of(filename))

    return await _stream(svc, request, sha256, filename, headers)


async def _stream(
    svc: Services, request: Request, sha256: Sha256, filename: str, headers: dict[str, str]
) -> Response:
    """A blob from a store without local files (S3): a redirect to a short-lived URL when
    configured, else the bytes, with Content-Length, a single Range and HEAD."""
    blobs = svc.ctx.blobs
    url = await run_in_threadpool(blobs.url_for, sha256, filename)
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    size = await run_in_threadpool(blobs.size, sha256)
    headers = {**headers, "Accept-Ranges": "bytes"}
    media_type = content_type_of(filename)
    span = _single_range(request.headers.get("range"), size)
    start, end, status = 0, size, 200
    if isinstance(span, str):
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if span is not None:
        (start, end), status = span, 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    whole = (start, end) == (0, size)

    async def chunks() -> AsyncIterator[bytes]:
        if end == start:
            return
        handle = await run_in_threadpool(blobs.open, sha256, start, None if whole else end)
        remaining = end - start
        try:
            while remaining > 0:
                chunk = await run_in_threadpool(handle.read, min(remaining, 1024 * 1024))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    return StreamingResponse(chunks(), status_code=status, headers=headers, media_type=media_type)


def _single_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end exclusive) of a one-part `bytes=` Range; "unsatisfiable"; or None to send
    the whole file (no Range, or one this server ignores, as RFC 9110 allows)."""
    if not header or header[:6].lower() != "bytes=" or "," in header:
        return None
    first, sep, last = header[6:].strip().partition("-")
    if not sep or not _digits(first or last) or (first and last and not _digits(last)):
        return None
    if not first:  # the last N bytes
        count = int(last) if len(last) <= 19 else size
        return (size - min(count, size), size) if count and size else "unsatisfiable"
    if len(first) > 19:
        return "unsatisfiable"
    start = int(first)
    if last and (len(last) <= 19 and int(last) < start):
        return None  # last before first: invalid, ignored
    if start >= size:
        return "unsatisfiable"
    end = size if not last or len(last) > 19 else min(int(last) + 1, size)
    return (start, end)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


routes = [Route("/files/{sha256}/{filename}", serve_file, methods=["GET", "HEAD"])]
