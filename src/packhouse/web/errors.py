"""The one place where domain errors become HTTP responses."""

from __future__ import annotations

import contextlib
import errno
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from packhouse import errors
from packhouse.auth.redact import redact_path
from packhouse.web.accesslog import printable
from packhouse.web.negotiate import Kind, preferred

log = logging.getLogger("packhouse.web")

REALM = 'Basic realm="packhouse", charset="UTF-8"'


class ResponseCutShort(Exception):
    """Raised inside a response body that is already being sent, to have the server break
    the connection so the client sees a failed transfer. Whoever raises it logs why."""


def cut_short_quietly(app: ASGIApp) -> ASGIApp:
    """The app, ending a response cut short without the HTTP server's traceback (the
    reason is logged where it was raised). The body is left incomplete, so the server
    closes the connection and the client sees a failed transfer."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        with contextlib.suppress(ResponseCutShort):
            await app(scope, receive, send)

    return wrapped


_STATUS: list[tuple[type[errors.PackhouseError], int]] = [
    (errors.UpstreamTimeout, 504),
    (errors.UpstreamTooLarge, 502),  # before TooLarge: the upstream's fault, not the caller's
    (errors.NotAcceptable, 406),
    (errors.NotFound, 404),
    (errors.TooLarge, 413),
    (errors.InvalidInput, 400),
    (errors.MethodNotAllowed, 405),
    (errors.Conflict, 409),
    (errors.AuthenticationRequired, 401),
    (errors.PermissionDenied, 403),
    (errors.RateLimited, 429),
    (errors.StorageFull, 507),
    (errors.Unavailable, 503),
    (errors.UpstreamError, 502),
]


def status_of(exc: errors.PackhouseError) -> int:
    for cls, code in _STATUS:
        if isinstance(exc, cls):
            return code
    return 400


def error_headers(exc: errors.PackhouseError) -> dict[str, str]:
    headers = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
    if isinstance(exc, errors.AuthenticationRequired):
        headers["WWW-Authenticate"] = REALM
    if isinstance(exc, errors.MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allowed)
    if isinstance(exc, errors.RateLimited | errors.Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
    return headers


def error_response(request: Request, exc: errors.PackhouseError) -> Response:
    status = status_of(exc)
    headers = error_headers(exc)
    kind = _wanted(request)
    if kind == "html":
        from packhouse.web.ui.error_page import error_page

        return error_page(request, status, exc.message, headers)
    if kind == "json":
        detail: object = exc.message
        if isinstance(exc, errors.InvalidUpload) and len(exc.problems) > 1:
            detail = exc.problems
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    if isinstance(exc, errors.InvalidUpload) and len(exc.problems) > 1:
        text = "\n".join(f"- {p}" for p in exc.problems)
        return PlainTextResponse(f"{status} {text}\n", status_code=status, headers=headers)
    return PlainTextResponse(f"{status} {exc.message}\n", status_code=status, headers=headers)


def _wanted(request: Request) -> Kind:
    """What the request accepts decides (web/negotiate.py); without a preference, the
    management API answers JSON and everything else plain text."""
    return preferred(request.headers.get("accept")) or (
        "json" if request.url.path.startswith("/api/") else "text"
    )


async def handle_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no route for the path, a method not allowed), negotiated."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=headers)
    kind = _wanted(request)
    if kind == "html":
        from packhouse.web.ui.error_page import error_page

        return error_page(request, exc.status_code, str(exc.detail), headers)
    if kind == "json":
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=headers)


async def handle_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.PackhouseError)
    return error_response(request, exc)


async def handle_os_error(request: Request, exc: Exception) -> Response:
    """An OSError out of a route: no space left on the device (or quota) is the 507 it
    means, said to the client; any other is unexpected (handle_unexpected)."""
    assert isinstance(exc, OSError)
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        raise exc
    log.warning(
        "no space left on %s %s: %s", request.method, printable(redact_path(request.url.path)), exc
    )
    return error_response(request, errors.StorageFull())


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ResponseCutShort):
        return Response(status_code=500)  # never sent: the response had started
    log.exception(
        "unexpected error on %s %s", request.method, printable(redact_path(request.url.path))
    )
    message = "the server failed unexpectedly; the error is in its log"
    headers = {"Cache-Control": "no-store"}
    kind = _wanted(request)
    if kind == "html":
        from packhouse.web.ui.error_page import error_page

        with contextlib.suppress(Exception):  # the page itself failing: plain text
            return error_page(request, 500, message, headers)
    if kind == "json":
        return JSONResponse({"detail": message}, status_code=500, headers=headers)
    return PlainTextResponse(f"500 {message}\n", status_code=500, headers=headers)
