"""The web UI's pages for reading: home, a repository, a PyPI project, a conda package,
search. Every read goes through the services the clients use, checked by the access
service like any other request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from packaging.utils import canonicalize_name
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from packhouse.db.repository_store import Repository
from packhouse.errors import AuthenticationRequired, InvalidInput, NotFound
from packhouse.services.access import Principal
from packhouse.services.downloads import Downloads
from packhouse.types import Action, Format
from packhouse.web import deps
from packhouse.web.downloads import counter
from packhouse.web.ui.chart import daily_bars
from packhouse.web.ui.render import HTML_SECURITY_HEADERS
from packhouse.web.ui.state import base_url, signed_in, ui, viewer

MAX_QUERY = 200
MAX_LISTED = 1000  # names listed on a repository page; the search box narrows the rest


async def context(request: Request) -> dict[str, object]:
    session = await signed_in(request)
    who = await viewer(request)
    return {
        "who": who,
        "signed_in": session is not None,
        "csrf": session.session.csrf if session else "",
        "base": base_url(request),
        "q": "",
    }


def _query(request: Request) -> str:
    q = request.query_params.get("q", "")
    if len(q) > MAX_QUERY:
        raise InvalidInput(f"the search is longer than {MAX_QUERY} characters")
    return q.strip()


def _format(text: str) -> Format:
    try:
        return Format(text)
    except ValueError:
        raise NotFound(f"there is no format {text!r}: use pypi or conda") from None


async def _readable(request: Request, fmt: str, name: str) -> tuple[Repository, Principal]:
    """The repository, if the viewer may read it; sign-in first for an anonymous viewer."""
    who = await viewer(request)
    repo = deps.services(request).catalog.get(_format(fmt), name)
    deps.services(request).access.check(who, repo, Action.READ)
    return repo, who


def sign_in_first(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method not in ("GET", "HEAD"):
        target = "/"  # a form sent after the session ended: sent again by hand, if at all
    response = RedirectResponse(f"/ui/login?next={quote(target, safe='/')}", status_code=303)
    response.headers.update(HTML_SECURITY_HEADERS)
    return response


def guarded(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Any]:
    """The endpoint, sending a viewer whose session has ended (or who never signed in) to
    the sign-in page instead of a 401 (whose WWW-Authenticate would make the browser ask
    for a password in its own dialog)."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except AuthenticationRequired:
            return sign_in_first(request)

    return wrapped


async def home(request: Request) -> Response:
    ctx = await context(request)
    who = ctx["who"]
    assert isinstance(who, Principal)
    browse = ui(request).browse
    summaries = await run_in_threadpool(browse.summaries, who)
    latest = await run_in_threadpool(browse.latest_uploads, who)
    return ui(request).renderer.page(
        request, "home.html", {**ctx, "summaries": summaries, "latest": latest}
    )


async def search(request: Request) -> Response:
    ctx = await context(request)
    who = ctx["who"]
    assert isinstance(who, Principal)
    q = _query(request)
    hits = await run_in_threadpool(ui(request).browse.search, who, q) if q else []
    shown = {**ctx, "q": q, "hits": hits, "live_search": True}
    return ui(request).renderer.page(request, "search.html", shown)


async def repository(request: Request) -> Response:
    p = request.path_params
    try:
        repo, who = await _readable(request, p["format"], p["repo"])
    except AuthenticationRequired:
        return sign_in_first(request)
    q = _query(request)
    svc = deps.services(request)
    names = await run_in_threadpool(ui(request).browse.names, repo, q)
    ctx = await context(request)
    return ui(request).renderer.page(
        request,
        "repository.html",
        {
            **ctx,
            "repo": repo,
            "order": svc.catalog.order(repo),
            "names": names[:MAX_LISTED],
            "total": len(names),
            "repo_q": q,
            "may_upload": svc.access.can(who, repo, Action.UPLOAD),
            "public": svc.access.is_public(repo.id),
        },
    )


async def pypi_project(request: Request) -> Response:
    p = request.path_params
    try:
        repo, _ = await _readable(request, "pypi", p["repo"])
    except AuthenticationRequired:
        return sign_in_first(request)
    name = canonicalize_name(p["project"])
    if name != p["project"]:
        version = f"{p['version']}/" if "version" in p else ""
        return RedirectResponse(f"/ui/pypi/{repo.name}/{name}/{version}", status_code=301)
    base = base_url(request)
    view = await run_in_threadpool(ui(request).projects.project, repo, name, p.get("version"), base)
    ctx = await context(request)
    public = deps.services(request).access.is_public(repo.id)
    shown = {
        "repo": repo,
        "project": view,
        "public": public,
        "index_url": f"{base}/pypi/{repo.name}/simple/",
    }
    renderer = ui(request).renderer
    key = ("pypi-project", repo.id, view.normalized, p.get("version"), base, view.etag, public)
    body = await run_in_threadpool(renderer.fragment, key, "project_body.html", shown)
    order = deps.services(request).catalog.order(repo)
    downloads = await run_in_threadpool(counter(request).of_project, order, name, p.get("version"))
    return renderer.page(
        request,
        "project.html",
        {**ctx, **shown, "body": body, **_downloads(downloads, p.get("version"))},
    )


def _downloads(found: Downloads, version: str | None) -> dict[str, object]:
    what = f"version {version}" if version else "all versions"
    label = f"Downloads per day over the last {len(found.days)} days, {what}"
    return {"downloads": found, "chart": daily_bars(found.days, label), "chart_label": label}


async def conda_package(request: Request) -> Response:
    p = request.path_params
    try:
        repo, _ = await _readable(request, "conda", p["repo"])
    except AuthenticationRequired:
        return sign_in_first(request)
    view = await run_in_threadpool(ui(request).packages.package, repo, p["package"])
    ctx = await context(request)
    svc = deps.services(request)
    downloads = await run_in_threadpool(
        counter(request).of_project, svc.catalog.order(repo), p["package"], None
    )
    base = base_url(request)
    return ui(request).renderer.page(
        request,
        "package.html",
        {
            **ctx,
            "repo": repo,
            "package": view,
            "public": svc.access.is_public(repo.id),
            "channel_url": f"{base}/conda/{repo.name}",
            **_downloads(downloads, None),
        },
    )


async def static(request: Request) -> Response:
    found = ui(request).renderer.static.get(request.path_params["name"])
    if found is None:
        raise NotFound(f"there is no static file {request.path_params['name']!r}")
    return Response(
        found.body,
        media_type=found.content_type,
        headers={
            "Cache-Control": "public, max-age=604800, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def ui_root(request: Request) -> Response:
    return RedirectResponse("/", status_code=302)


routes = [
    Route("/", home, methods=["GET", "HEAD"]),
    Route("/ui/", ui_root, methods=["GET", "HEAD"]),
    Route("/ui/search", search, methods=["GET", "HEAD"]),
    Route("/ui/static/{name}", static, methods=["GET", "HEAD"]),
    Route("/ui/pypi/{repo}/{project}/", pypi_project, methods=["GET", "HEAD"]),
    Route("/ui/pypi/{repo}/{project}/{version}/", pypi_project, methods=["GET", "HEAD"]),
    Route("/ui/conda/{repo}/{package}/", conda_package, methods=["GET", "HEAD"]),
    Route("/ui/{format}/{repo}/", repository, methods=["GET", "HEAD"]),
]
