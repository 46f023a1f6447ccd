"""Small request helpers shared by the routes: who is calling, conditional responses."""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from packhouse.db.repository_store import Repository
from packhouse.services.access import Principal
from packhouse.services.pages import Page
from packhouse.types import Action
from packhouse.wiring import Services

_TOKEN_SEGMENT = re.compile(r"/t/[^/]+/")


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def principal(request: Request) -> Principal:
    """Authenticate the request (argon2 runs off the event loop)."""
    svc = services(request)
    header = request.headers.get("authorization")
    url_token = request.scope.get("packhouse.url_token")
    quick = svc.access.authenticate_cached(header, url_token)
    if quick is not None:
        return quick
    return await run_in_threadpool(svc.access.authenticate, header, url_token)


async def authorize(request: Request, repo: Repository, action: Action) -> Principal:
    who = await principal(request)
    services(request).access.check(who, repo, action)
    return who


def redact(path: str) -> str:
    """A path fit for logs: tokens in `/t/<token>/` segments are masked."""
    return _TOKEN_SEGMENT.sub("/t/***/", path)


def page_response(
    request: Request,
    page: Page,
    *,
    max_age: int,
    public: bool,
    vary: str = "Accept",
    media_type: str | None = None,
) -> Response:
    headers = {
        "ETag": page.etag,
        "X-PyPI-Last-Serial": str(page.last_serial),
        "Cache-Control": f"{'public' if public else 'private'}, max-age={max_age}",
        "Vary": vary if public else f"{vary}, Authorization",
        "Referrer-Policy": "no-referrer",
    }
    if _matches(request.headers.get("if-none-match"), page.etag):
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else page.body
    response = Response(body, headers=headers, media_type=media_type or page.content_type)
    if request.method == "HEAD":
        response.headers["Content-Length"] = str(len(page.body))
    return response


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))
