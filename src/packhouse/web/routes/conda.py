"""Conda channel routes: repodata and its compressed forms, CEP 16 shards, channeldata,
index.html listings, packages, and uploads (`PUT` one package, or a multipart
`POST .../upload`; the API has `POST /api/v1/repositories/conda/{name}/packages`).

Every path of a private channel asks for credentials first (401 with WWW-Authenticate, or
403), before anything about the path is looked at; a final catch-all route does the same
for paths no other route knows, then answers 404. Any valid subdir name answers, with
empty repodata when it holds nothing.
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from packhouse.db.repository_store import Repository
from packhouse.errors import ArtifactNotFound, InvalidUpload, TooLarge
from packhouse.services import streamed_checks
from packhouse.services.conda_proxied import FilePage
from packhouse.services.conda_proxy import ProxiedPackage
from packhouse.services.conda_reads import BINARY_TYPE, INDEX_FILES, valid_subdir
from packhouse.services.conda_uploads import (
    CondaUploadOutcome,
    set_patch_instructions,
    upload_conda,
)
from packhouse.services.pages import Page
from packhouse.storage.base import IncomingFile
from packhouse.types import Action, Format, Sha256
from packhouse.web.deps import (
    authorize,
    declared_length,
    index_cache_control,
    page_response,
    read_form,
    services,
)
from packhouse.web.downloads import count_download
from packhouse.web.routes.files import IMMUTABLE, blob_response

MAX_PATCH_BYTES = 16 * 1024 * 1024  # conda-forge's largest patch_instructions.json is smaller
_SHARD = re.compile(r"^([0-9a-f]{64})\.msgpack\.zst$")


async def _channel(request: Request, action: Action) -> tuple[Repository, bool]:
    svc = services(request)
    repo = svc.catalog.get(Format.CONDA, request.path_params["repo"])
    await authorize(request, repo, action)
    return repo, svc.access.is_public(repo.id)


def _subdir(request: Request, repo: Repository) -> str:
    subdir: str = request.path_params["subdir"]
    if not valid_subdir(subdir):
        raise ArtifactNotFound(
            f"{subdir!r} is not a conda subdir: use 'noarch' or '<os>-<arch>' (CEP 26)"
        )
    return subdir


def _index_response(
    request: Request, page: Page | FilePage, public: bool, immutable: bool
) -> Response:
    """An index page with the Cache-Control of every index page (web/deps.py REVALIDATE:
    conda, rattler and any HTTP cache ask again each time, answered by a 304 while the ETag
    is unchanged), or, for a shard, immutable."""
    svc = services(request)
    if isinstance(page, FilePage):
        return _file_page_response(request, page, public)
    response = page_response(
        request, page, max_age=svc.ctx.settings.index_max_age, public=public, vary="Accept"
    )
    if immutable:
        response.headers["Cache-Control"] = f"{'public' if public else 'private'}, {IMMUTABLE}"
    return response


def _file_page_response(request: Request, page: FilePage, public: bool) -> Response:
    """A page kept in a file (the repodata of an order with proxies), sent from the file,
    with the headers of any other index page."""
    policy = index_cache_control(services(request).ctx.settings.index_max_age)
    headers = {
        "ETag": page.etag,
        "X-PyPI-Last-Serial": str(page.last_serial),
        "Cache-Control": f"{'public' if public else 'private'}, {policy}",
        "Vary": "Accept" if public else "Accept, Authorization",
        "Referrer-Policy": "no-referrer",
    }
    if page.stale:
        headers["Warning"] = '110 - "Response is Stale"'
    wanted = request.headers.get("if-none-match", "")
    tags = [t.strip().removeprefix("W/") for t in wanted.split(",")] if wanted else []
    if page.etag in tags or "*" in tags:
        return Response(status_code=304, headers=headers)
    return FileResponse(page.path, headers=headers, media_type=page.content_type)


async def channeldata(request: Request) -> Response:
    repo, public = await _channel(request, Action.READ)
    page = await run_in_threadpool(services(request).conda.channeldata, repo)
    return _index_response(request, page, public, immutable=False)


async def channel_index(request: Request) -> Response:
    repo, public = await _channel(request, Action.READ)
    page = await run_in_threadpool(services(request).conda.channel_index, repo)
    return _index_response(request, page, public, immutable=False)


async def subdir_index(request: Request) -> Response:
    repo, public = await _channel(request, Action.READ)
    subdir = _subdir(request, repo)
    page = await run_in_threadpool(services(request).conda.page, repo, subdir, "index.html")
    return _index_response(request, page, public, immutable=False)


async def not_found(request: Request) -> Response:
    """Any other path under a channel: credentials first, then a 404 naming what exists."""
    repo, _ = await _channel(request, Action.READ)
    base = f"/conda/{repo.name}"
    raise ArtifactNotFound(
        f"there is no {request.method} {base}/{request.path_params['rest']} in a conda channel;"
        f" it has {base}/ (index.html), {base}/channeldata.json and, per subdir,"
        f" {base}/<subdir>/repodata.json (.zst, .bz2), current_repodata.json,"
        f" repodata_shards.msgpack.zst, index.html and the package files; upload with"
        f" PUT {base}/<subdir>/<filename> or POST {base}/upload"
    )


async def subdir_file(request: Request) -> Response:
    repo, public = await _channel(request, Action.READ)
    subdir = _subdir(request, repo)
    filename: str = request.path_params["filename"]
    svc = services(request)
    if filename in INDEX_FILES:
        page = svc.conda.cached_page(repo, subdir, filename)
        if page is None:
            page = await run_in_threadpool(svc.conda.page, repo, subdir, filename)
        return _index_response(request, page, public, immutable=False)
    shard = _SHARD.match(filename)
    if shard:  # the static layout keeps shards beside the packages
        return await _shard(request, repo, subdir, shard.group(1), public)
    found = await run_in_threadpool(svc.conda.find_package, repo, subdir, filename)
    if isinstance(found, ProxiedPackage):
        stored = await run_in_threadpool(found.fetch)
        return await blob_response(svc, request, stored.sha256, filename, public)
    count_download(request, found.id)
    return await blob_response(svc, request, Sha256(found.sha256), filename, public)


async def shard_file(request: Request) -> Response:
    repo, public = await _channel(request, Action.READ)
    subdir = _subdir(request, repo)
    match = _SHARD.match(request.path_params["filename"])
    if not match:
        raise ArtifactNotFound("a shard is named '<sha256 in hex>.msgpack.zst'")
    return await _shard(request, repo, subdir, match.group(1), public)


async def _shard(
    request: Request, repo: Repository, subdir: str, hex_digest: str, public: bool
) -> Response:
    data = await run_in_threadpool(services(request).conda.shard, repo, subdir, hex_digest)
    page = Page(data, BINARY_TYPE, f'"{hex_digest}"', 0)
    response = _index_response(request, page, public, immutable=True)
    del response.headers["X-PyPI-Last-Serial"]
    return response


async def _read_capped(request: Request, cap: int, what: str) -> bytes:
    """The whole body, refused with 413 as soon as it is known to pass `cap` bytes."""
    too_large = TooLarge(f"{what} are larger than the limit of {cap} bytes ({cap >> 20} MiB)")
    if declared_length(request) > cap:
        raise too_large
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > cap:
                raise too_large
    except ClientDisconnect:
        raise InvalidUpload("the upload was cut short: the client stopped sending") from None
    return bytes(body)


async def _receive(request: Request) -> IncomingFile:
    """The raw request body, streamed into a hashed, size-capped temporary file."""
    svc = services(request)
    limit = svc.ctx.settings.max_upload_bytes
    if declared_length(request) > limit:
        raise TooLarge(f"the upload is larger than the limit of {limit} bytes (max_upload_bytes)")
    incoming = IncomingFile(svc.ctx.tmp_dir, limit, "package")
    try:
        streamed_checks.start(incoming, request.path_params["filename"])
        async for chunk in request.stream():
            incoming.write(chunk)
        incoming.finish()
    except ClientDisconnect:
        incoming.discard()
        raise InvalidUpload("the upload was cut short: the client stopped sending") from None
    except BaseException:
        incoming.discard()
        raise
    if incoming.digests.size == 0:
        incoming.discard()
        raise InvalidUpload("the request body is empty: send the package's bytes")
    return incoming


def _uploaded(outcome: CondaUploadOutcome) -> Response:
    where = f"{outcome.repository}/{outcome.subdir}"
    if outcome.created:
        text, status = f"OK: {outcome.filename} uploaded to {where}\n", 201
    else:
        text, status = f"OK: {outcome.filename} is already in {where} with the same contents\n", 200
    return PlainTextResponse(text, status_code=status, headers={"Cache-Control": "no-store"})


async def put_file(request: Request) -> Response:
    filename: str = request.path_params["filename"]
    svc = services(request)
    if filename == "patch_instructions.json":
        repo = svc.catalog.get(Format.CONDA, request.path_params["repo"])
        who = await authorize(request, repo, Action.ADMIN)
        subdir = _subdir(request, repo)
        body = await _read_capped(request, MAX_PATCH_BYTES, "the patch instructions")
        await run_in_threadpool(set_patch_instructions, svc.ctx, repo, who, subdir, body)
        text = f"OK: patch instructions set for {repo.name}/{subdir}\n"
        return PlainTextResponse(text, headers={"Cache-Control": "no-store"})
    repo = svc.catalog.get(Format.CONDA, request.path_params["repo"])
    who = await authorize(request, repo, Action.UPLOAD)
    subdir = _subdir(request, repo)
    if filename in INDEX_FILES or _SHARD.match(filename):
        raise InvalidUpload(f"{filename} is made by the server; upload packages instead")
    incoming = await _receive(request)
    try:
        outcome = await run_in_threadpool(
            upload_conda, svc.ctx, repo, who, filename, incoming, subdir
        )
    finally:
        incoming.discard()
    return _uploaded(outcome)


async def read_upload_form(request: Request) -> tuple[str, IncomingFile, str | None]:
    """A multipart form's `file` part streamed to an IncomingFile (hashed, size-capped), its
    filename and the optional `subdir` field. The caller discards the file."""
    form = await read_form(request, "file")
    if form.file is None or not form.filename:
        form.discard()
        raise InvalidUpload("the form has no 'file' field holding the package")
    filename = form.filename.replace("\\", "/").rsplit("/", 1)[-1]
    return filename, form.file, form.fields.get("subdir") or None


async def post_upload(request: Request) -> Response:
    svc = services(request)
    repo = svc.catalog.get(Format.CONDA, request.path_params["repo"])
    who = await authorize(request, repo, Action.UPLOAD)
    filename, incoming, subdir = await read_upload_form(request)
    try:
        outcome = await run_in_threadpool(
            upload_conda, svc.ctx, repo, who, filename, incoming, subdir
        )
    finally:
        incoming.discard()
    return _uploaded(outcome)


routes = [
    Route("/conda/{repo}/", channel_index, methods=["GET", "HEAD"]),
    Route("/conda/{repo}/index.html", channel_index, methods=["GET", "HEAD"]),
    Route("/conda/{repo}/channeldata.json", channeldata, methods=["GET", "HEAD"]),
    Route("/conda/{repo}/upload", post_upload, methods=["POST"]),
    Route("/conda/{repo}/{subdir}/shards/{filename}", shard_file, methods=["GET", "HEAD"]),
    Route("/conda/{repo}/{subdir}/{filename}", subdir_file, methods=["GET", "HEAD"]),
    Route("/conda/{repo}/{subdir}/{filename}", put_file, methods=["PUT"]),
    Route("/conda/{repo}/{subdir}/", subdir_index, methods=["GET", "HEAD"]),
    # last: whatever no route above knows, after the credentials are checked
    Route("/conda/{repo}/{rest:path}", not_found, methods=["GET", "HEAD", "PUT", "POST"]),
]
