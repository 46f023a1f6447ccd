"""PyPI routes: the simple API (PEP 503/691), uploads (legacy API) and the JSON API."""

from __future__ import annotations

from functools import lru_cache

from packaging.utils import canonicalize_name
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from packhouse.db.repository_store import Repository
from packhouse.errors import MethodNotAllowed, NotFound
from packhouse.formats.pypi.simple import Negotiated, negotiate
from packhouse.services.access import Principal
from packhouse.services.pypi_uploads import upload_pypi
from packhouse.types import Action, Format
from packhouse.web.deps import (
    RawHeaders,
    authorize,
    page_answer,
    page_response,
    read_form,
    services,
)
from packhouse.wiring import Services

_negotiate_cached = lru_cache(maxsize=256)(negotiate)
_canonical = lru_cache(maxsize=4096)(canonicalize_name)


def _negotiate(accept: str | None, format_param: str | None) -> Negotiated:
    # An unencoded '+' in `?format=application/vnd.pypi.simple.v1+json` arrives as a space.
    return _negotiate_cached(accept, format_param.replace(" ", "+") if format_param else None)


async def simple_index(request: Request) -> Response:
    svc = services(request)
    repo = svc.catalog.get(Format.PYPI, request.path_params["repo"])
    await authorize(request, repo, Action.READ)
    return await _simple_page(request, repo, None)


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
    return await _simple_page(request, repo, normal)


async def _simple_page(request: Request, repo: Repository, project: str | None) -> Response:
    """A project's page (or the project list, for None) in the negotiated format: from the
    cache when it is current, else rendered off the event loop."""
    svc = services(request)
    wanted = _negotiate(request.headers.get("accept"), request.query_params.get("format"))
    if project is None:
        page = svc.pypi.cached_index_page(repo, wanted.kind)
        if page is None:
            page = await run_in_threadpool(svc.pypi.index_page, repo, wanted.kind)
    else:
        page = svc.pypi.cached_project_page(repo, project, wanted.kind)
        if page is None:
            page = await run_in_threadpool(svc.pypi.project_page, repo, project, wanted.kind)
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
    form = await read_form(request, "content")
    try:
        outcome = await run_in_threadpool(
            upload_pypi, svc.ctx, repo, who, form.fields, form.filename, form.file, form.repeated
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
    # public_url when set (PublicOrigin makes request.base_url its origin, but not its path)
    base_url = svc.ctx.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    project = request.path_params["project"]
    page = svc.pypi.cached_json_api(repo, project, version, base_url)
    if page is None:
        page = await run_in_threadpool(svc.pypi.json_api, repo, project, version, base_url)
    return page_response(
        request, page, max_age=svc.ctx.settings.index_max_age, public=svc.access.is_public(repo.id)
    )


async def repository_root(request: Request) -> Response:
    """`/pypi/<repo>/` read by a browser or an installer: the simple index is below it."""
    svc = services(request)
    repo = svc.catalog.get(Format.PYPI, request.path_params["repo"])
    await authorize(request, repo, Action.READ)
    return RedirectResponse(f"/pypi/{repo.name}/simple/", status_code=302)


async def unknown_path(request: Request) -> Response:
    """Any other path under a repository: 401/403 first, so a private repository tells a
    stranger nothing; then a redirect to the path with its trailing slash, a 405 for a
    method a path doesn't take, or a 404 that says what exists."""
    svc = services(request)
    repo = svc.catalog.get(Format.PYPI, request.path_params["repo"])
    await authorize(request, repo, Action.READ)
    path = request.url.path
    allowed: set[str] = set()
    for route in routes[:-1]:
        for candidate in (path, path + "/"):
            match, _ = route.matches({**request.scope, "path": candidate})
            if match is Match.FULL and candidate != path:
                target = candidate + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(target, status_code=308)
            if match is not Match.NONE and candidate == path:
                allowed |= set(route.methods or ())
    if allowed:
        raise MethodNotAllowed(
            f"{request.method} is not allowed on {path}; use {', '.join(sorted(allowed))}",
            sorted(allowed),
        )
    raise NotFound(
        f"there is nothing at {path}; the simple index is /pypi/{repo.name}/simple/,"
        f" uploads go to /pypi/{repo.name}/ and the JSON API is"
        f" /pypi/{repo.name}/pypi/<project>/json"
    )


ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]

routes = [
    Route("/pypi/{repo}/simple/", simple_index, methods=["GET", "HEAD"]),
    Route("/pypi/{repo}/simple/{project}/", simple_project, methods=["GET", "HEAD"]),
    Route("/pypi/{repo}/simple/{project}", simple_project, methods=["GET", "HEAD"]),
    Route("/pypi/{repo}/", upload, methods=["POST"]),
    Route("/pypi/{repo}/legacy/", upload, methods=["POST"]),
    Route("/pypi/{repo}/pypi/{project}/json", json_project, methods=["GET", "HEAD"]),
    Route("/pypi/{repo}/pypi/{project}/{version}/json", json_release, methods=["GET", "HEAD"]),
    Route("/pypi/{repo}/", repository_root, methods=["GET", "HEAD"]),
    Route("/pypi/{repo}/{rest:path}", unknown_path, methods=ALL_METHODS),
]


class SimpleFastPath:
    """A pure-ASGI fast path for the hottest requests: GET or HEAD of a simple page (a
    project's or the project list) that is cached and known good at the newest serial.

    It answers with the same status, headers and body as `simple_project`/`simple_index`
    (both use `page_answer`), without the router, the Request object or a thread. Anything
    else goes on to the app untouched: another path, a query string, a name to redirect, a
    page to render, credentials that need slow checking (argon2, tokens to record), a caller
    who may not read the repository (the route answers 401/403), any error.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._decisions = _Decisions()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith("/pypi/")
            and scope["method"] in ("GET", "HEAD")
            and not scope.get("query_string")
            and not scope.get("root_path")
        ):
            try:
                answer = _fast_answer(scope, self._decisions)
            except Exception:  # the route answers errors properly
                answer = None
            if answer is not None:
                status, headers, body = answer
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _fast_answer(scope: Scope, memo: _Decisions) -> tuple[int, RawHeaders, bytes] | None:
    parts = scope["path"].split("/")
    # ["", "pypi", repo, "simple", ""] or ["", "pypi", repo, "simple", project, ""]
    if len(parts) not in (5, 6) or parts[3] != "simple" or parts[-1] or not parts[2]:
        return None
    project = parts[4] if len(parts) == 6 else None
    if project is not None and (not project or _canonical(project) != project):
        return None
    accept = authorization = if_none_match = None
    for key, value in scope["headers"]:
        if key == b"accept":
            if accept is None:
                accept = value.decode("latin-1")
        elif key == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif key == b"if-none-match" and if_none_match is None:
            if_none_match = value.decode("latin-1")
    svc: Services = scope["app"].state.services
    serial = svc.ctx.db.watcher.current()
    wanted = _negotiate(accept, None)
    who = svc.access.authenticate_cached(authorization, None, serial)
    if who is None:
        return None
    if memo.serial != serial or memo.services is not svc:
        memo.reset(svc, serial)
    # Keyed by the principal object's identity (hashing the dataclass costs more): the
    # entry holds the object, so its id can't be reused by another while the entry lives.
    decision = memo.table.get((parts[2], id(who)))
    if decision is None or decision[3] is not who:
        repo = svc.catalog.get(Format.PYPI, parts[2], serial)
        can_read = svc.access.can(who, repo, Action.READ)
        decision = (repo, can_read, svc.access.is_public(repo.id), who)
        if len(memo.table) < 1024:
            memo.table[(parts[2], id(who))] = decision
    repo, allowed, public, _ = decision
    if not allowed:
        return None
    if project is None:
        page = svc.pypi.cached_index_page(repo, wanted.kind, serial)
    else:
        page = svc.pypi.cached_project_page(repo, project, wanted.kind, serial)
    if page is None:
        return None
    return page_answer(
        page,
        scope["method"],
        if_none_match,
        media_type=wanted.content_type,
        max_age=svc.ctx.settings.index_max_age,
        public=public,
    )


class _Decisions:
    """The fast path's repository lookups and access decisions, valid at one serial: the
    catalog and the access rules are functions of the journal serial and the principal, so
    these are what `catalog.get`, `access.can` and `access.is_public` would answer."""

    def __init__(self) -> None:
        self.services: Services | None = None
        self.serial = -1
        self.table: dict[tuple[str, int], tuple[Repository, bool, bool, Principal]] = {}

    def reset(self, services: Services, serial: int) -> None:
        self.services, self.serial, self.table = services, serial, {}
