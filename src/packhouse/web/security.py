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
a token in its URL never leaks it to the next site through the Referer header.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packhouse.auth.tokens import PREFIXES

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
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"referrer-policy" for name, _ in headers):
                    headers.append((b"referrer-policy", b"no-referrer"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_policy)
