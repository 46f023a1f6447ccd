"""Signing in and out, and the signed-in user's tokens. Every form carries a CSRF token:
the session's own, or (for the sign-in form, before there is a session) one kept in a
short-lived cookie and matched against the form."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from packhouse.db.repository_store import Repository
from packhouse.db.token_store import Token
from packhouse.errors import AuthenticationRequired, InvalidInput, PermissionDenied
from packhouse.services import accounts
from packhouse.services.access import may_manage_token
from packhouse.services.sessions import LIFETIME, SignedIn, csrf_ok
from packhouse.types import Action
from packhouse.web import deps
from packhouse.web.client import client_address
from packhouse.web.ui.render import HTML_SECURITY_HEADERS
from packhouse.web.ui.routes import context, guarded
from packhouse.web.ui.state import LOGIN_COOKIE, SESSION_COOKIE, set_cookie, signed_in, ui

MAX_FORM_FIELDS = 200
EXPIRIES = {"7d": "7 days", "30d": "30 days", "90d": "90 days", "365d": "1 year", "": "never"}


def _safe_next(target: str | None) -> str:
    """Only a path on this server: never another site (an open redirect)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _redirect(to: str) -> Response:
    response = RedirectResponse(to, status_code=303)
    response.headers.update(HTML_SECURITY_HEADERS)
    return response


async def _form(request: Request) -> FormData:
    try:
        return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    except Exception as error:  # python-multipart's parse errors, limits exceeded
        raise InvalidInput(f"the form could not be read: {error}") from None


async def _session_form(request: Request) -> tuple[SignedIn, FormData]:
    """A signed-in user's form, its CSRF token checked."""
    session = await signed_in(request)
    if session is None:
        raise AuthenticationRequired("sign in first: the session has ended")
    form = await _form(request)
    sent = form.get("csrf")
    if not csrf_ok(session.session.csrf, sent if isinstance(sent, str) else None):
        raise PermissionDenied(
            "the form's security token is missing or wrong (CSRF); reload the page and try again"
        )
    return session, form


async def login_page(request: Request, message: str = "", status: int = 200) -> Response:
    if await signed_in(request) is not None and request.method == "GET":
        return _redirect(_safe_next(request.query_params.get("next")))
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    ctx = await context(request)
    response = ui(request).renderer.page(
        request,
        "login.html",
        {
            **ctx,
            "login_csrf": token,
            "message": message,
            "next": _safe_next(request.query_params.get("next")),
        },
        status=status,
    )
    set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


async def login(request: Request) -> Response:
    form = await _form(request)
    sent = form.get("csrf")
    expected = request.cookies.get(LOGIN_COOKIE) or ""
    if not expected or not csrf_ok(expected, sent if isinstance(sent, str) else None):
        raise PermissionDenied(
            "the sign-in form's security token is missing or wrong (CSRF); reload the page"
            " and try again"
        )
    username, password = form.get("username"), form.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        return await login_page(request, "Enter your user name and password.", 400)
    client = client_address(request)
    sessions = ui(request).sessions
    try:
        made = await run_in_threadpool(sessions.sign_in, username, password, client)
    except AuthenticationRequired as error:
        return await login_page(request, error.message, 401)
    nxt = form.get("next")
    response = _redirect(_safe_next(nxt if isinstance(nxt, str) else None))
    set_cookie(request, response, SESSION_COOKIE, made.secret, int(LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


async def logout(request: Request) -> Response:
    await _session_form(request)
    secret = request.cookies.get(SESSION_COOKIE)
    await run_in_threadpool(ui(request).sessions.sign_out, secret)
    response = _redirect("/")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


async def tokens_page(
    request: Request, created: accounts.CreatedToken | None = None, status: int = 200
) -> Response:
    session = await signed_in(request)
    if session is None:
        return _redirect("/ui/login?next=/ui/tokens")
    svc = deps.services(request)
    who = session.principal
    listed = await run_in_threadpool(accounts.list_tokens, svc.ctx, who.name)
    readable = ui(request).browse.readable(who)
    ctx = await context(request)
    return ui(request).renderer.page(
        request,
        "tokens.html",
        {**ctx, **token_listing(svc.ctx.clock(), listed, readable, created)},
        status=status,
    )


def token_listing(
    now: datetime,
    listed: Sequence[Token],
    repos: Sequence[Repository],
    created: accounts.CreatedToken | None,
) -> dict[str, object]:
    """What a page of tokens with a form making one shows (templates/macros.html)."""
    return {"tokens": listed, "repos": repos, "created": created, "expiries": EXPIRIES, "now": now}


async def create_token(request: Request) -> Response:
    session, form = await _session_form(request)
    svc = deps.services(request)
    action, expires = token_choice(form)
    picked = [str(v) for v in form.getlist("repo") if str(v)]
    scope = None if form.get("scope") == "all" else picked
    name = str(form.get("name") or "")
    made = await run_in_threadpool(
        lambda: accounts.create_token(
            svc.ctx,
            svc.access,
            svc.catalog,
            actor=session.principal.name,
            owner=session.principal.name,
            name=name,
            repositories=scope,
            actions=[action],
            expires=expires,
        )
    )
    return await tokens_page(request, made, status=201)


def token_choice(form: FormData) -> tuple[Action, str | None]:
    """What a token form picked: the action, and the expiry (None: never)."""
    action_text = str(form.get("action") or "read")
    try:
        action = Action(action_text)
    except ValueError:
        raise InvalidInput(f"unknown action {action_text!r}: read, upload or admin") from None
    expires = str(form.get("expires") or "")
    if expires not in EXPIRIES:
        raise InvalidInput(f"unknown expiry {expires!r}: pick one of the listed ones")
    return action, expires or None


async def revoke_token(request: Request) -> Response:
    session, _ = await _session_form(request)
    svc = deps.services(request)
    try:
        token_id = int(request.path_params["token_id"])
    except ValueError:
        raise InvalidInput("the token id is not a number") from None
    token = await run_in_threadpool(accounts.get_token, svc.ctx, token_id)
    if not may_manage_token(session.principal, token):
        raise PermissionDenied("this token is not yours to revoke")
    await run_in_threadpool(
        lambda: accounts.revoke_token(svc.ctx, actor=session.principal.name, token_id=token_id)
    )
    return _redirect("/ui/tokens")


routes = [
    Route("/ui/login", login_page, methods=["GET", "HEAD"]),
    Route("/ui/login", login, methods=["POST"]),
    Route("/ui/logout", guarded(logout), methods=["POST"]),
    Route("/ui/tokens", tokens_page, methods=["GET", "HEAD"]),
    Route("/ui/tokens", guarded(create_token), methods=["POST"]),
    Route("/ui/tokens/{token_id}/revoke", guarded(revoke_token), methods=["POST"]),
]
