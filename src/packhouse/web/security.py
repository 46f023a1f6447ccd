"""Pure-ASGI middleware for credentials in URLs and security headers.

`UrlToken`: conda clients can only send a token in the URL, `/t/<token>/conda/<repo>/...`.
The segment is taken out of the path before routing, and the token is put in
`scope["packhouse.url_token"]`, where `web.deps.principal` finds it. The access log wraps
this middleware, so it sees the original path and masks the token.

`NoReferrer`: every response carries `Referrer-Policy: no-referrer`, so a page fetched with
a token in its URL never leaks it to the next site through the Referer header.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

URL_TOKEN_KEY = "packhouse.url_token"  # noqa: S105 (a scope key name)


class UrlToken:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/t/"):
            token, sep, rest = scope["path"][3:].partition("/")
            if token:
                scope = dict(scope)
                scope["path"] = "/" + rest if sep else "/"
                raw = scope.get("raw_path")
                if isinstance(raw, bytes) and raw.startswith(b"/t/"):
                    _, _, raw_rest = raw[3:].partition(b"/")
                    scope["raw_path"] = b"/" + raw_rest
                scope[URL_TOKEN_KEY] = token
        await self.app(scope, receive, send)


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
