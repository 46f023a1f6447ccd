"""UpstreamClient end to end against real HTTP servers on loopback (127.0.0.1 and 127.0.0.2).

127.0.0.2 plays the internal address: it is on loopback, so nothing leaves the machine, and
with only 127.0.0.1/32 allowed the client must refuse it.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpcore
import pytest

from packhouse.errors import (
    TooLarge,
    UpstreamError,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamTooLarge,
)
from packhouse.upstream import netpolicy
from packhouse.upstream.http import UpstreamClient
from packhouse.upstream.netpolicy import NetworkPolicy
from packhouse.web.errors import status_of

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@dataclass
class Server:
    url: str
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    routes: dict[str, Handler] = field(default_factory=dict)


def _reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handle


def _serve(host: str) -> Iterator[Server]:
    state = Server(url="")

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            state.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            handler = state.routes.get(self.path.partition("?")[0], _reply(404, b"no such page"))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                handler(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((host, 0), H)
    server.daemon_threads = True
    state.url = f"http://{host}:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def upstream() -> Iterator[Server]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def other_origin() -> Iterator[Server]:
    """Another server on 127.0.0.1 (another port: another origin, still allowed)."""
    yield from _serve("127.0.0.1")


@pytest.fixture
def internal() -> Iterator[Server]:
    """A server on 127.0.0.2, outside the allowed 127.0.0.1/32."""
    yield from _serve("127.0.0.2")


@pytest.fixture
def client() -> Iterator[UpstreamClient]:
    c = UpstreamClient(NetworkPolicy(["127.0.0.1/32"]), timeout=2.0, max_redirects=3)
    yield c
    c.close()


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection the client opens (recorded, then made as usual)."""
    seen: list[tuple[str, int]] = []
    real = socket.create_connection

    def create_connection(address: tuple[str, int], *args: object, **kwargs: object) -> object:
        seen.append(address)
        return real(address, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return seen


# -- plain fetches ------------------------------------------------------------------------


def test_get_from_an_allowed_address(upstream: Server, client: UpstreamClient) -> None:
    upstream.routes["/simple/demo/"] = _reply(
        200, b"<html>demo</html>", {"Content-Type": "text/html", "ETag": '"v1"'}
    )
    response = client.get(
        upstream.url + "/simple/demo/", headers={"Accept": "text/html"}, max_bytes=1000
    )
    assert response.status == 200
    assert response.body == b"<html>demo</html>"
    assert response.headers["etag"] == '"v1"'
    assert response.headers["ETag"] == '"v1"'  # case-insensitive
    assert response.url == upstream.url + "/simple/demo/"
    _path, headers = upstream.seen[0]
    assert headers["accept"] == "text/html"
    assert headers["user-agent"].startswith("packhouse/")


@pytest.mark.parametrize("status", [304, 404, 410, 500, 503])
def test_statuses_are_returned_not_raised(
    upstream: Server, client: UpstreamClient, status: int
) -> None:
    upstream.routes["/x"] = _reply(status, b"" if status == 304 else b"why")
    assert client.get(upstream.url + "/x", max_bytes=100).status == status


def test_stream_reads_in_chunks(upstream: Server, client: UpstreamClient) -> None:
    body = bytes(range(256)) * 100
    upstream.routes["/files/demo-1.0.tar.gz"] = _reply(200, body)
    with client.stream(upstream.url + "/files/demo-1.0.tar.gz") as stream:
        assert stream.status == 200
        assert stream.headers["content-length"] == str(len(body))
        assert stream.url.endswith("/files/demo-1.0.tar.gz")
        chunks = list(stream.iter_bytes(1000))
    assert b"".join(chunks) == body
    assert {len(c) for c in chunks[:-1]} == {1000}


def test_connections_go_to_the_checked_address_under_the_name(
    upstream: Server,
    client: UpstreamClient,
    monkeypatch: pytest.MonkeyPatch,
    connects: list[tuple[str, int]],
) -> None:
    """The name is resolved once by the policy; the socket is opened to that address, and
    the Host header still names the host. "upstream.test" exists in no DNS: a second lookup
    would fail."""
    port = int(upstream.url.rpartition(":")[2])
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[netpolicy.IPAddress]:
        lookups.append(host)
        assert host == "upstream.test"
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(netpolicy, "resolve", resolve)
    upstream.routes["/simple/"] = _reply(200, b"ok")
    response = client.get(f"http://upstream.test:{port}/simple/", max_bytes=100)
    assert response.body == b"ok"
    assert lookups == ["upstream.test"]
    assert connects == [("127.0.0.1", port)]
    assert upstream.seen[0][1]["host"] == f"upstream.test:{port}"


# -- refusals -----------------------------------------------------------------------------


def test_nothing_allowed_refuses_before_connecting(
    upstream: Server, connects: list[tuple[str, int]]
) -> None:
    upstream.routes["/simple/"] = _reply(200, b"ok")
    with UpstreamClient(NetworkPolicy([]), timeout=2.0) as strict:
        with pytest.raises(UpstreamRefused, match=r"address 127\.0\.0\.1 is loopback") as info:
            strict.get(upstream.url + "/simple/", max_bytes=100)
        assert upstream.url in str(info.value)
        with pytest.raises(UpstreamRefused), strict.stream(upstream.url + "/simple/"):
            pass
    assert connects == []
    assert upstream.seen == []


def test_a_name_with_one_refused_address_is_refused(
    upstream: Server,
    client: UpstreamClient,
    monkeypatch: pytest.MonkeyPatch,
    connects: list[tuple[str, int]],
) -> None:
    ip = ipaddress.ip_address
    monkeypatch.setattr(netpolicy, "resolve", lambda host, port: [ip("127.0.0.1"), ip("127.0.0.2")])
    with pytest.raises(UpstreamRefused, match=r"resolves to 127\.0\.0\.2 \(one of 2"):
        client.get(upstream.url.replace("127.0.0.1", "upstream.test") + "/", max_bytes=100)
    assert connects == []


def test_file_urls_are_refused(client: UpstreamClient, connects: list[tuple[str, int]]) -> None:
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/", "data:,x"):
        with pytest.raises(UpstreamRefused, match="only http and https"):
            client.get(url, max_bytes=100)
    assert connects == []


def test_redirect_to_a_refused_address_is_refused(
    upstream: Server, internal: Server, client: UpstreamClient, connects: list[tuple[str, int]]
) -> None:
    internal.routes["/secret"] = _reply(200, b"internal data")
    upstream.routes["/simple/demo/"] = _reply(302, headers={"Location": internal.url + "/secret"})
    with pytest.raises(UpstreamRefused, match=r"127\.0\.0\.2") as info:
        client.get(upstream.url + "/simple/demo/", max_bytes=1000)
    assert "redirected" in str(info.value)
    with pytest.raises(UpstreamRefused), client.stream(upstream.url + "/simple/demo/"):
        pass
    assert internal.seen == []
    assert all(host == "127.0.0.1" for host, _ in connects)


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x/"])
def test_redirect_to_another_scheme_is_refused(
    upstream: Server, client: UpstreamClient, target: str
) -> None:
    upstream.routes["/x"] = _reply(301, headers={"Location": target})
    with pytest.raises(UpstreamRefused, match="only http and https"):
        client.get(upstream.url + "/x", max_bytes=100)


def test_redirects_are_followed_and_capped(upstream: Server, client: UpstreamClient) -> None:
    upstream.routes["/a"] = _reply(301, headers={"Location": "/b"})
    upstream.routes["/b"] = _reply(307, headers={"Location": "c"})
    upstream.routes["/c"] = _reply(200, b"here")
    response = client.get(upstream.url + "/a", max_bytes=100)
    assert (response.status, response.body, response.url) == (200, b"here", upstream.url + "/c")
    upstream.routes["/loop"] = _reply(302, headers={"Location": "/loop"})
    with pytest.raises(UpstreamError, match="redirected more than 3 times"):
        client.get(upstream.url + "/loop", max_bytes=100)
    assert sum(1 for p, _ in upstream.seen if p == "/loop") == 4  # the first ask + 3 redirects


# -- credentials --------------------------------------------------------------------------


def test_credentials_are_not_sent_after_a_cross_origin_redirect(
    upstream: Server, other_origin: Server, client: UpstreamClient
) -> None:
    upstream.routes["/same"] = _reply(302, headers={"Location": "/final"})
    upstream.routes["/final"] = _reply(200, b"ok")
    upstream.routes["/away"] = _reply(302, headers={"Location": other_origin.url + "/files/x"})
    upstream.routes["/back"] = _reply(302, headers={"Location": other_origin.url + "/return"})
    other_origin.routes["/files/x"] = _reply(200, b"file")
    other_origin.routes["/return"] = _reply(302, headers={"Location": upstream.url + "/final"})

    client.get(upstream.url + "/same", auth=("alice", "s3cret"), max_bytes=100)
    assert upstream.seen[-1][0] == "/final"
    assert upstream.seen[-1][1]["authorization"].startswith("Basic ")  # same origin: kept

    response = client.get(
        upstream.url + "/away",
        auth=("alice", "s3cret"),
        headers={"Cookie": "session=abc", "X-Other": "kept"},
        max_bytes=100,
    )
    assert response.body == b"file"
    assert "authorization" in upstream.seen[-1][1]
    headers = other_origin.seen[-1][1]
    assert "authorization" not in headers
    assert "cookie" not in headers
    assert headers["x-other"] == "kept"

    with client.stream(upstream.url + "/away", headers={"Authorization": "Bearer tok3n"}) as stream:
        assert b"".join(stream.iter_bytes()) == b"file"
    assert "authorization" not in other_origin.seen[-1][1]

    # once dropped, credentials stay dropped, even back on the first origin
    client.get(upstream.url + "/back", auth=("alice", "s3cret"), max_bytes=100)
    assert upstream.seen[-1][0] == "/final"
    assert "authorization" not in upstream.seen[-1][1]


def test_errors_never_show_credentials(upstream: Server, client: UpstreamClient) -> None:
    strict = UpstreamClient(NetworkPolicy([]), timeout=1.0)
    with strict, pytest.raises(UpstreamRefused) as info:
        strict.get(upstream.url + "/t/ph_secrettoken123/x", auth=("u", "pw9"), max_bytes=9)
    assert "ph_secrettoken123" not in str(info.value)
    assert "pw9" not in str(info.value)
    with pytest.raises(UpstreamRefused, match="user info") as info:
        client.get(upstream.url.replace("//", "//u:pw9@") + "/", max_bytes=9)
    assert "pw9" not in str(info.value)


def test_cookies_are_not_kept(upstream: Server, client: UpstreamClient) -> None:
    upstream.routes["/set"] = _reply(200, b"", {"Set-Cookie": "session=abc; Path=/"})
    upstream.routes["/next"] = _reply(200, b"")
    client.get(upstream.url + "/set", max_bytes=10)
    client.get(upstream.url + "/next", max_bytes=10)
    assert "cookie" not in upstream.seen[-1][1]


# -- size caps and timeouts ----------------------------------------------------------------


def _endless(h: http.server.BaseHTTPRequestHandler) -> None:
    """A body with no length that goes on (until 64 MiB or the client hangs up)."""
    h.protocol_version = "HTTP/1.0"
    h.send_response(200)
    h.send_header("Connection", "close")
    h.end_headers()
    chunk = b"x" * 65536
    for _ in range(1024):
        h.wfile.write(chunk)


def test_max_bytes(upstream: Server, client: UpstreamClient) -> None:
    upstream.routes["/declared"] = _reply(200, b"y" * 5000)
    upstream.routes["/endless"] = _endless
    upstream.routes["/exact"] = _reply(200, b"z" * 100)
    with pytest.raises(UpstreamTooLarge, match="declares 5000 bytes") as info:
        client.get(upstream.url + "/declared", max_bytes=4999)
    assert isinstance(info.value, TooLarge)
    assert upstream.url + "/declared" in str(info.value)
    started = time.monotonic()
    with pytest.raises(TooLarge, match="more than the 100000 bytes"):
        client.get(upstream.url + "/endless", max_bytes=100_000)
    assert time.monotonic() - started < 5  # stopped reading, did not wait for 64 MiB
    assert client.get(upstream.url + "/exact", max_bytes=100).body == b"z" * 100


def _slow_headers(h: http.server.BaseHTTPRequestHandler) -> None:
    time.sleep(1.5)
    _reply(200, b"late")(h)


def _slow_body(h: http.server.BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "10")
    h.end_headers()
    h.wfile.write(b"12345")
    h.wfile.flush()
    time.sleep(1.5)
    h.wfile.write(b"67890")


def test_slow_upstream_times_out(upstream: Server) -> None:
    upstream.routes["/slow"] = _slow_headers
    upstream.routes["/slow-body"] = _slow_body
    with UpstreamClient(NetworkPolicy(["127.0.0.1/32"]), timeout=0.3) as quick:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout, match="timed out") as info:
            quick.get(upstream.url + "/slow", max_bytes=100)
        assert time.monotonic() - started < 1.4
        assert upstream.url + "/slow" in str(info.value)
        with pytest.raises(UpstreamTimeout):
            quick.get(upstream.url + "/slow-body", max_bytes=100)
        with quick.stream(upstream.url + "/slow-body") as stream, pytest.raises(UpstreamTimeout):
            b"".join(stream.iter_bytes())


def test_connection_failure_is_an_upstream_error(client: UpstreamClient) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UpstreamError, match="failed") as info:
        client.get(f"http://127.0.0.1:{port}/", max_bytes=100)
    assert not isinstance(info.value, UpstreamTimeout | UpstreamRefused)


def test_connect_timeout_is_an_upstream_timeout(
    client: UpstreamClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object, **kwargs: object) -> object:
        raise httpcore.ConnectTimeout("timed out")

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", never)
    with pytest.raises(UpstreamTimeout, match=r"timed out \(connect\)"):
        client.get("http://127.0.0.1:9/", max_bytes=100)


def test_upstream_errors_are_answered_502_and_504() -> None:
    assert status_of(UpstreamError("x")) == 502
    assert status_of(UpstreamRefused("x")) == 502
    assert status_of(UpstreamTooLarge("x")) == 502  # a TooLarge, but the upstream's fault
    assert status_of(UpstreamTimeout("x")) == 504
    assert status_of(TooLarge("x")) == 413
