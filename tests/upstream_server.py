"""A static upstream for proxy tests: serves fixed documents on loopback, records every path
it is asked for, and can be told to misbehave (slow, down, wrong bytes, redirects).

It plays a public index or channel the way `python -m http.server` over a static tree
would, with ETag/304 support, and is stopped at teardown.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.conftest import free_port


@dataclass
class Document:
    body: bytes
    content_type: str = "application/octet-stream"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # when set: the first half of the body is sent, then the rest once this is set (30 s at
    # most), so a test can act while a download is mid-body
    hold: threading.Event | None = None

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


class StaticUpstream:
    """`documents` maps a path to what is served there; anything else is a 404."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.documents: dict[str, Document] = {}
        self.requests: list[str] = []
        self.delay = 0.0  # seconds before answering
        self._lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with upstream._lock:
                    upstream.requests.append(self.path)
                    doc = upstream.documents.get(self.path.split("?", 1)[0])
                if upstream.delay:
                    time.sleep(upstream.delay)
                if doc is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if doc.status == 200 and self.headers.get("If-None-Match") == doc.etag:
                    self.send_response(304)
                    self.send_header("ETag", doc.etag)
                    self.end_headers()
                    return
                self.send_response(doc.status)
                self.send_header("Content-Type", doc.content_type)
                self.send_header("Content-Length", str(len(doc.body)))
                if doc.status == 200:
                    self.send_header("ETag", doc.etag)
                for key, value in doc.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                with suppress(BrokenPipeError, ConnectionResetError):
                    if doc.hold is not None:
                        half = len(doc.body) // 2
                        self.wfile.write(doc.body[:half])
                        self.wfile.flush()
                        doc.hold.wait(30)
                        self.wfile.write(doc.body[half:])
                    else:
                        self.wfile.write(doc.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def asked(self, fragment: str) -> list[str]:
        with self._lock:
            return [p for p in self.requests if fragment in p]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def static_upstream(host: str = "127.0.0.1") -> Iterator[StaticUpstream]:
    upstream = StaticUpstream(host)
    try:
        yield upstream
    finally:
        upstream.stop()


@contextmanager
def directory_server(root: Path, log: Path) -> Iterator[str]:
    """`python -m http.server` over `root` on loopback, a plain web server as static trees
    and old indexes are served, writing its request log to `log`; yields its URL."""
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            cwd=root, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
