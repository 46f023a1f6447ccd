"""PyPI routes: the simple API (PEP 503/691), uploads (legacy API) and the JSON API."""

from __future__ import annotations

from functools import lru_cache

from packaging.utils import canonicalize_name
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from packhouse.errors import InvalidUpload, TooLarge
from packhouse.formats.pypi.simple import Negotiated, negotiate
from packhouse.services.pypi_uploads import upload_pypi
from packhouse.types import Action, Format
from packhouse.web.deps import authorize, page_response, services
from packhouse.web.multipart import parse_form

UPLOAD_SLACK = 1024 * 1024  # room for the form's other fields around the file


_negotiate_cached = lru_cache(maxsize=256)(negotiate)


def _negotiate(accept: str | None, format_param: str | None) -> Negotiated:
    # An unencoded '+' in `?format=application/vnd.pypi.simple.v1+json` arrives as a space.
    return _negotiate_cached(accept, format_param.replace(" ", "+") if format_param else None)


async def simple_index(request: Request) -> Response:
    svc = services(request)
    repo = svc.catalog.get(Format.PYPI, request.path_params["repo"])
    await authorize(request, repo, Action.READ)
    wanted = _negotiate(request.headers.get("accept"), request.query_params.get("format"))
    page = await run_in_threadpool(svc.pypi.index_page, repo, wanted.kind)
    return page_response(
        request,
        page,
        media_type=wanted.content_type,
        max_age=svc.ctx.settings.index_max_age,
        public=svc.access.is_public(repo.id),
    )


async def simple_project(request: Request) -> Response:
    svc = services(request)
    repo = svc.catalog.get(Format.PYPI, request.path_params["repo"])
    await authorize(request, repo, Action.READ)
    project: str = request.path_params["project"]
    normal = canonicalize_name(project)
    if project != normal or not request.url.path.endswith("/"):
        target = f"/pypi/{repo.name}/simple/{normal}/"
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(target, status_code=301)
    wanted = _negotiate(request.headers.get("accept"), request.query_params.get("format"))
    page = svc.pypi.cached_project_page(repo, normal, wanted.kind)
    if page is None:
        page = await run_in_threadpool(svc.pypi.project_page, repo, normal, wanted.kind)
    return page_response(
        request,
        page,
        media_type=wanted.content_type,
        max_age=svc.ctx.settings.index_max_age,
        public=svc.access.is_public(repo.id),
    )


async def upload(request: Request) -> Response:
    svc = services(request)
    repo = svc.catalog.get(Format.PYPI, request.path_params["repo"])
    who = await authorize(request, repo, Action.UPLOAD)
    limit = svc.ctx.settings.max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit + UPLOAD_SLACK:
        raise TooLarge(f"the upload is larger than the limit of {limit} bytes (max_upload_bytes)")
    try:
        form = await parse_form(
            request.headers.get("content-type", ""), request.stream(), svc.ctx.tmp_dir, limit
        )
    except ClientDisconnect:
        raise InvalidUpload("the upload was cut short: the client stopped sending") from None
    try:
        outcome = await run_in_threadpool(
            upload_pypi, svc.ctx, repo, who, form.fields, form.filename, form.file
        )
    finally:
        form.discard()
    if outcome.created:
        text = f"OK: {outcome.filename} uploaded to {repo.name}\n"
    else:
        text = f"OK: {outcome.filename} is already in {repo.name} with the same contents\n"
    return PlainTextResponse(text, headers={"Cache-Control": "no-store"})


async def json_project(request: Request) -> Response:
    return await _json(request, None)


async def json_release(request: Request) -> Response:
    return await _json(request, request.path_params["version"])


async def _json(request: Request, version: str | None) -> Response:
    svc = services(request)
    repo = svc.catalog.get(Format.PYPI, request.path_params["repo"])
    await authorize(request, repo, Action.READ)
    base_url = str(request.base_url).rstrip("/")
    page = await run_in_threadpool(
        svc.pypi.json_api, repo, request.path_params["project"], version, base_url
    )
    return page_response(
        request, page, max_age=svc.ctx.settings.index_max_age, public=svc.access.is_public(repo.id)
    )


routes = [
    Route("/pypi/{repo}/simple/", simple_index, methods=["GET", "HEAD"]),
    Route("/pypi/{repo}/simple/{project}/", simple_project, methods=["GET", "HEAD"]),
    Route("/pypi/{repo}/simple/{project}", simple_project, methods=["GET", "HEAD"]),
    Route("/pypi/{repo}/", upload, methods=["POST"]),
    Route("/pypi/{repo}/legacy/", upload, methods=["POST"]),
    Route("/pypi/{repo}/pypi/{project}/json", json_project, methods=["GET", "HEAD"]),
    Route("/pypi/{repo}/pypi/{project}/{version}/json", json_release, methods=["GET", "HEAD"]),
]
