"""Pure-ASGI middleware for credentials in URLs and security headers.

`UrlToken`: conda clients can only send a token in the URL, `/t/<token>/conda/<repo>/...`.
conda itself moves the segment: it reads a channel URL whose path starts with `/conda` as
location `host/conda` and channel `<repo>` (its Anaconda Enterprise rule), and puts the
token between the two, so it asks for `/conda/t/<token>/<repo>/...`; that form is taken
too when the segment starts like a token (`ph-`, `ph_`), since a channel may be named `t`.
The segment is taken out of the path before routing, and the token is put in
`scope["packhouse.url_token"]`, where `web.deps.principal` finds it. The access log wraps
this middleware, so it sees the original path and masks the token.

`NoReferrer`: every response carries `Referrer-Policy: no-referrer`, so a page fetched with
a token in its URL never leaks it to the next site through the Referer header, and
`X-Content-Type-Options: nosniff`, so no browser reads a file or JSON as HTML or script; an
HTML response without a Content-Security-Policy of its own gets the index pages' (the web
UI and the page views set theirs; the API's Swagger page is allowed its CDN and its one
inline script, as FastAPI renders it).

`PublicOrigin`: with `public_url` set, the request's scheme, server and Host header are
those of `public_url` before the app sees them, so every absolute URL it builds (the JSON
API's file URLs, Starlette's trailing-slash redirects, url_for) names the public address and
never what a client put in Host: a poisoned Host can't reach a cached page or a Location.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packhouse.auth.tokens import PREFIXES
from packhouse.web.deps import INDEX_PAGE_CSP

URL_TOKEN_KEY = "packhouse.url_token"  # noqa: S105 (a scope key name)
_CONDA = "/conda"


class UrlToken:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/t/"):
                scope = _without_token(scope, "")
            elif path.startswith("/conda/t/") and path[9:].startswith(PREFIXES):
                scope = _without_token(scope, _CONDA)
        await self.app(scope, receive, send)


def _without_token(scope: Scope, head: str) -> Scope:
    """The scope with the `/t/<token>` after `head` taken out of its path and raw path."""
    token, sep, rest = scope["path"][len(head) + 3 :].partition("/")
    if not token:
        return scope
    scope = dict(scope)
    scope["path"] = head + ("/" + rest if sep else "/")
    raw = scope.get("raw_path")
    raw_head = head.encode() + b"/t/"
    if isinstance(raw, bytes) and raw.startswith(raw_head):
        _, _, raw_rest = raw[len(raw_head) :].partition(b"/")
        scope["raw_path"] = head.encode() + b"/" + raw_rest
    scope[URL_TOKEN_KEY] = token
    return scope


class NoReferrer:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                added = _missing(message.get("headers", ()), scope["path"])
                if added:
                    message = {**message, "headers": [*message.get("headers", ()), *added]}
            await send(message)

        await self.app(scope, receive, send_with_policy)


def _missing(headers: Iterable[tuple[bytes, bytes]], path: str) -> list[tuple[bytes, bytes]]:
    """The policy headers a response lacks (one pass: this runs for every response that is
    not the simple API's fast path, repodata among them)."""
    referrer = nosniff = csp = html = False
    for name, value in headers:
        name = name.lower()
        if name == b"referrer-policy":
            referrer = True
        elif name == b"x-content-type-options":
            nosniff = True
        elif name == b"content-security-policy":
            csp = True
        elif name == b"content-type":
            html = value.startswith(b"text/html")
    added = []
    if not referrer:
        added.append((b"referrer-policy", b"no-referrer"))
    if not nosniff:
        added.append((b"x-content-type-options", b"nosniff"))
    if html and not csp:
        added.append(
            (b"content-security-policy", DOCS_CSP if path == DOCS_PATH else INDEX_PAGE_CSP)
        )
    return added


DOCS_PATH = "/api/v1/docs"
DOCS_CSP = (
    b"default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline';"
    b" style-src https://cdn.jsdelivr.net; img-src https://fastapi.tiangolo.com data:;"
    b" connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class PublicOrigin:
    def __init__(self, app: ASGIApp, public_url: str) -> None:
        self.app = app
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"public_url {public_url!r} is not an http(s) URL")
        self.scheme = parts.scheme
        self.host = parts.netloc.rpartition("@")[2].encode("idna")
        self.server = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = dict(scope)
            scope["scheme"] = self.scheme
            scope["server"] = self.server
            scope["headers"] = [
                *((k, v) for k, v in scope["headers"] if k != b"host"),
                (b"host", self.host),
            ]
        await self.app(scope, receive, send)
