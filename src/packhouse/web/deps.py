"""Small request helpers shared by the routes: who is calling, conditional responses."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from packhouse.auth.redact import redact_path
from packhouse.db.repository_store import Repository
from packhouse.errors import InvalidUpload, TooLarge
from packhouse.formats.conda.html import STYLE_CSP_SOURCE
from packhouse.services.access import Principal
from packhouse.services.pages import Page
from packhouse.types import Action
from packhouse.web.client import client_address
from packhouse.web.multipart import UPLOAD_SLACK, ParsedForm, parse_form
from packhouse.wiring import Services


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def principal(request: Request) -> Principal:
    """Authenticate the request: the cheap cases (anonymous, a known token, a remembered
    password) answer at once; argon2 and token-use writes run off the event loop."""
    svc = services(request)
    header = request.headers.get("authorization")
    url_token = request.scope.get("packhouse.url_token")
    quick = svc.access.authenticate_cached(header, url_token)
    if quick is not None:
        return quick
    client = client_address(request)
    return await run_in_threadpool(svc.access.authenticate, header, url_token, client)


async def authorize(request: Request, repo: Repository, action: Action) -> Principal:
    who = await principal(request)
    services(request).access.check(who, repo, action)
    return who


def declared_length(request: Request) -> int:
    """The request's Content-Length, or 0 when absent or not a plain decimal number (the
    body is then measured while it streams)."""
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and len(length) <= 19:
        return int(length)
    return 0


async def read_form(request: Request, file_field: str) -> ParsedForm:
    """The request's multipart form, its `file_field` part streamed to an IncomingFile
    (hashed, capped at max_upload_bytes). The caller discards the form's file."""
    svc = services(request)
    limit = svc.ctx.settings.max_upload_bytes
    if declared_length(request) > limit + UPLOAD_SLACK:
        raise TooLarge(f"the upload is larger than the limit of {limit} bytes (max_upload_bytes)")
    try:
        return await parse_form(
            request.headers.get("content-type", ""),
            request.stream(),
            svc.ctx.tmp_dir,
            limit,
            file_field=file_field,
        )
    except ClientDisconnect:
        raise InvalidUpload("the upload was cut short: the client stopped sending") from None


def redact(path: str) -> str:
    """A path fit for logs: the token of a `/t/<token>/` segment is masked."""
    return redact_path(path)


def page_response(
    request: Request,
    page: Page,
    *,
    max_age: int,
    public: bool,
    vary: str = "Accept",
    media_type: str | None = None,
) -> Response:
    status, headers, body = page_answer(
        page,
        request.method,
        request.headers.get("if-none-match"),
        max_age=max_age,
        public=public,
        vary=vary,
        media_type=media_type,
    )
    response = Response(status_code=status)
    response.body = body
    response.raw_headers = list(headers)
    return response


# Index pages (simple pages, the JSON API, repodata, channeldata) change with every upload.
# Installers keep a page for its `max-age` (pip's and uv's HTTP caches, conda's
# RepodataCache), so a version published a moment ago would be missing for that long;
# `no-cache` makes them ask again each time with If-None-Match, answered by a 304 from the
# cached page while nothing changed. An operator who prefers fewer requests to fresh pages
# sets index_max_age above 0. Files and shards are immutable (routes/files.py).
REVALIDATE = "no-cache"


def index_cache_control(max_age: int) -> str:
    """The Cache-Control policy of every index page (without public/private)."""
    return REVALIDATE if max_age <= 0 else f"max-age={max_age}"


# HTML index pages (PEP 503 simple pages, conda index.html) hold links and, in conda's, one
# inline style (allowed by its hash): no script, no other origin, no framing, no forms.
INDEX_PAGE_CSP = (
    "default-src 'none'; style-src 'self' "
    + STYLE_CSP_SOURCE
    + "; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
).encode("latin-1")
RawHeaders = tuple[tuple[bytes, bytes], ...]
_page_headers_cache: dict[tuple[object, ...], RawHeaders] = {}


def page_answer(
    page: Page,
    method: str,
    if_none_match: str | None,
    *,
    max_age: int,
    public: bool,
    vary: str = "Accept",
    media_type: str | None = None,
) -> tuple[int, RawHeaders, bytes]:
    """Status, raw headers and body answering a GET or HEAD of a cached page: 304 for a
    matching If-None-Match. Also used as is by the ASGI fast path of the simple API, so
    both send the same bytes; the headers are built once per page and kept."""
    if _matches(if_none_match, page.etag):
        return 304, _page_headers(page, max_age, public, vary, None), b""
    headers = _page_headers(page, max_age, public, vary, media_type or page.content_type)
    return 200, headers, b"" if method == "HEAD" else page.body


def _page_headers(
    page: Page, max_age: int, public: bool, vary: str, content_type: str | None
) -> RawHeaders:
    """`content_type` None: a 304's headers (no Content-Length, no Content-Type)."""
    key = (
        page.etag,
        page.last_serial,
        len(page.body),
        max_age,
        public,
        vary,
        content_type,
        page.stale,
    )
    found = _page_headers_cache.get(key)
    if found is not None:
        return found
    raw = [
        (b"etag", page.etag.encode("latin-1")),
        (b"x-pypi-last-serial", str(page.last_serial).encode("latin-1")),
        (
            b"cache-control",
            f"{'public' if public else 'private'}, {index_cache_control(max_age)}".encode(),
        ),
        (b"vary", (vary if public else f"{vary}, Authorization").encode("latin-1")),
        (b"referrer-policy", b"no-referrer"),
        (b"x-content-type-options", b"nosniff"),
    ]
    if content_type is not None and content_type.startswith("text/html"):
        raw.append((b"content-security-policy", INDEX_PAGE_CSP))
    if page.stale:
        raw.append((b"warning", b'110 - "Response is Stale"'))
    if content_type is not None:
        if content_type.startswith("text/") and "charset=" not in content_type.lower():
            content_type += "; charset=utf-8"
        raw.append((b"content-length", str(len(page.body)).encode("latin-1")))
        raw.append((b"content-type", content_type.encode("latin-1")))
    if len(_page_headers_cache) >= 4096:
        _page_headers_cache.clear()
    headers = _page_headers_cache[key] = tuple(raw)
    return headers


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))
