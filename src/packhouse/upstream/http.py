"""The synchronous HTTP client every proxy uses to ask its upstream.

httpx for URLs, headers and content decoding over an httpcore connection pool whose network
backend is `_GuardedBackend`: it resolves the host once, checks every address against the
`NetworkPolicy`, and connects to a checked address, so the check applies to the addresses
actually connected to (no DNS-rebinding gap). TLS server name and `Host` still use the name.

Redirects are followed here, not by httpx, so every target passes the same URL and address
checks; credentials (`auth`, and Authorization or Cookie headers) are dropped once a redirect
leaves the origin of the URL first asked. Nothing is read from the environment: no proxy
variables, no `.netrc`, no cookies kept between requests.

Errors: UpstreamRefused (a URL or address not allowed), UpstreamTimeout (connect or read
timeout), UpstreamTooLarge (a body over `max_bytes`; also a TooLarge), UpstreamError (anything
else on the wire). Messages name the URL without credentials.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import importlib.metadata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from packhouse.errors import (
    UpstreamError,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamTooLarge,
)
from packhouse.upstream.netpolicy import NetworkPolicy, display_url

__all__ = ["UpstreamClient", "UpstreamResponse", "UpstreamStream", "default_user_agent"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Headers that carry credentials: never sent to another origin after a redirect.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def default_user_agent() -> str:
    try:
        version = importlib.metadata.version("packhouse")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source checkout
        version = "0"
    return f"packhouse/{version}"


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """A whole upstream response. `headers` is case-insensitive (httpx.Headers)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str  # the final URL, after redirects


class UpstreamStream:
    """An upstream response being read: status and headers now, the body by `iter_bytes`."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self.url: str = str(response.url)

    def iter_bytes(self, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
        """The decoded body in chunks of `chunk_size` bytes (the last may be shorter)."""
        with _wire_errors(self.url):
            yield from self._response.iter_bytes(chunk_size)


# ---------------------------------------------------------------------------------------------
# Transport: the address check at connect time


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self._policy = policy
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._policy.addresses_for(host, port)  # raises UpstreamRefused
        options = list(socket_options or ())
        failure: Exception | None = None
        for address in addresses:
            try:
                return self._backend.connect_tcp(
                    str(address), port, timeout, local_address, options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise UpstreamRefused("upstreams on unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes], url: str) -> None:
        self._stream = stream
        self._url = url

    def __iter__(self) -> Iterator[bytes]:
        with _wire_errors(self._url):
            yield from self._stream

    def close(self) -> None:
        closer = getattr(self._stream, "close", None)
        if closer is not None:
            closer()


class _GuardedTransport(httpx.BaseTransport):
    """httpx's HTTPTransport over `_GuardedBackend`, raising our errors, not httpx's."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(policy),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        url = display_url(request.url)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            with _wire_errors(url):
                response = self._pool.handle_request(core_request)
        except UpstreamError as exc:  # from the backend: name the URL
            if exc.message.startswith("upstream "):
                raise
            verb = "refused" if isinstance(exc, UpstreamRefused) else "failed"
            raise type(exc)(f"upstream {url} {verb}: {exc.message}") from None
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream, url),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


@contextlib.contextmanager
def _wire_errors(url: str) -> Iterator[None]:
    """httpcore's and httpx's errors as ours, naming the (redacted) URL."""
    try:
        yield
    except (httpcore.TimeoutException, httpx.TimeoutException) as exc:
        kind = type(exc).__name__.removesuffix("Timeout").lower() or "request"
        raise UpstreamTimeout(
            f"upstream {url} timed out ({kind}); it may be down or slow, try again later"
        ) from None
    except (
        httpcore.NetworkError,
        httpcore.ProtocolError,
        httpcore.UnsupportedProtocol,
        httpcore.ProxyError,
        httpx.HTTPError,
    ) as exc:
        detail = display_url(str(exc)) or type(exc).__name__
        raise UpstreamError(f"upstream {url} failed: {detail}") from None


# ---------------------------------------------------------------------------------------------
# The client


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, port)


class _NoCookies(http.cookiejar.CookieJar):
    """Keeps nothing: cookies set by one upstream must not reach a request made for another
    repository (the client is shared)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        pass


class UpstreamClient:
    """GET from upstreams through a `NetworkPolicy`, with timeouts, redirects and size caps.

    One client is shared by every proxy (its connection pool is thread-safe); `close()` it at
    shutdown. Connect and read timeouts are both `timeout` seconds.
    """

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        timeout: float,
        max_redirects: int = 5,
        user_agent: str | None = None,
    ) -> None:
        self.policy = policy
        self.timeout = timeout
        self.max_redirects = max_redirects
        self._client = httpx.Client(
            transport=_GuardedTransport(policy),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            cookies=_NoCookies(),  # the jar itself: httpx copies a Cookies into a new jar
            headers={"User-Agent": user_agent or default_user_agent()},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> UpstreamClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(
        self,
        url: str,
        headers: Mapping[str, str] | None,
        auth: tuple[str, str] | None,
    ) -> httpx.Response:
        """Send GET, following redirects with every check; the response is left unread."""
        self.policy.check_url(url)
        try:
            first = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise UpstreamRefused(
                f"upstream URL {display_url(url)!r} is not valid: {display_url(exc)}"
            ) from None
        origin = _origin(first)
        send_headers = dict(headers or {})
        send_auth = auth
        current = first
        came_from: str | None = None
        for hop in range(self.max_redirects + 1):
            try:
                with _wire_errors(display_url(current)):
                    request = self._client.build_request("GET", current, headers=send_headers)
                    basic = httpx.BasicAuth(*send_auth) if send_auth else None
                    response = self._client.send(request, auth=basic, stream=True)
            except UpstreamRefused as exc:
                if came_from is None:
                    raise
                raise UpstreamRefused(f"{exc.message} (redirected from {came_from})") from None
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or location is None:
                return response
            response.close()
            shown = display_url(current)
            if hop == self.max_redirects:
                raise UpstreamError(
                    f"upstream {shown} redirected more than {self.max_redirects} times"
                )
            try:
                target = current.join(location).copy_with(fragment=None)
            except httpx.InvalidURL as exc:
                raise UpstreamError(
                    f"upstream {shown} redirected to an invalid URL: {display_url(exc)}"
                ) from None
            try:
                self.policy.check_url(str(target))
            except UpstreamRefused as exc:
                raise UpstreamRefused(f"upstream {shown} redirected: {exc.message}") from None
            if _origin(target) != origin:
                send_auth = None
                send_headers = {
                    k: v for k, v in send_headers.items() if k.lower() not in _CREDENTIAL_HEADERS
                }
            came_from, current = shown, target
        raise AssertionError("unreachable")  # pragma: no cover

    def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        max_bytes: int,
    ) -> UpstreamResponse:
        """GET `url` whole. Every status is returned (304, 404, other 4xx/5xx: the caller
        decides); a body over `max_bytes` raises UpstreamTooLarge without reading the rest."""
        response = self._open(url, headers, auth)
        final = str(response.url)
        shown = display_url(final)
        try:
            declared = response.headers.get("content-length", "")
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if declared.isdigit() and encoding == "identity" and int(declared) > max_bytes:
                raise _too_large(shown, max_bytes, f"it declares {int(declared)} bytes")
            chunks: list[bytes] = []
            total = 0
            with _wire_errors(shown):
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > max_bytes:
                        raise _too_large(shown, max_bytes, "the body is longer")
                    chunks.append(chunk)
        finally:
            response.close()
        return UpstreamResponse(
            status=response.status_code,
            headers=httpx.Headers(response.headers),
            body=b"".join(chunks),
            url=final,
        )

    @contextlib.contextmanager
    def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Iterator[UpstreamStream]:
        """GET `url` for reading in chunks (package files): the same checks as `get`."""
        response = self._open(url, headers, auth)
        try:
            yield UpstreamStream(response)
        finally:
            response.close()


def _too_large(url: str, max_bytes: int, why: str) -> UpstreamTooLarge:
    return UpstreamTooLarge(
        f"upstream {url} sent more than the {max_bytes} bytes allowed ({why}); raise the "
        "size cap if this upstream is trusted"
    )
