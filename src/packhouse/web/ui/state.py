"""Who is looking at a web UI page, and the UI's own services (made on first use)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from packhouse.services.access import ANONYMOUS, Principal
from packhouse.services.browse import Browse
from packhouse.services.sessions import SessionService, SignedIn
from packhouse.services.ui_views import PackageViews, ProjectViews
from packhouse.web import deps
from packhouse.web.ui.render import Renderer

SESSION_COOKIE = "ph_session"
LOGIN_COOKIE = "ph_login"  # the sign-in form's CSRF token, before there is a session
_SCOPE_KEY = "packhouse.ui_session"


@dataclass
class Ui:
    renderer: Renderer
    browse: Browse
    projects: ProjectViews
    packages: PackageViews
    sessions: SessionService


def ui(request: Request) -> Ui:
    found: Ui | None = getattr(request.app.state, "ui", None)
    if found is None:
        svc = deps.services(request)
        found = Ui(
            Renderer(),
            Browse(svc.ctx, svc.catalog, svc.access, svc.upstreams),
            ProjectViews(svc.pypi),
            PackageViews(svc.conda),
            SessionService(svc.ctx, svc.access),
        )
        request.app.state.ui = found
    return found


def renderer(request: Request) -> Renderer:
    """The renderer alone (error pages need no services: the API app has none of its own
    UI state, and an error may come before the services are up)."""
    found: Ui | None = getattr(request.app.state, "ui", None)
    if found is not None:
        return found.renderer
    made: Renderer | None = getattr(request.app.state, "ui_renderer", None)
    if made is None:
        made = request.app.state.ui_renderer = Renderer()
    return made


async def signed_in(request: Request) -> SignedIn | None:
    if _SCOPE_KEY in request.scope:
        found: SignedIn | None = request.scope[_SCOPE_KEY]
        return found
    secret = request.cookies.get(SESSION_COOKIE)
    found = None
    if secret:
        found = await run_in_threadpool(ui(request).sessions.resolve, secret)
    request.scope[_SCOPE_KEY] = found
    return found


async def viewer(request: Request) -> Principal:
    """The signed-in user; else whoever the Authorization header names (scripts reading
    pages); else anonymous."""
    session = await signed_in(request)
    if session is not None:
        return session.principal
    if request.headers.get("authorization"):
        return await deps.principal(request)
    return ANONYMOUS


def secure(request: Request) -> bool:
    """Whether cookies get the Secure flag: the request came over TLS, or the server's
    public address is https."""
    public = deps.services(request).ctx.settings.public_url
    return request.url.scheme == "https" or public.startswith("https://")


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax" if name == SESSION_COOKIE else "strict",
        secure=secure(request),
    )


def base_url(request: Request) -> str:
    public = deps.services(request).ctx.settings.public_url
    return public.rstrip("/") if public else str(request.base_url).rstrip("/")
