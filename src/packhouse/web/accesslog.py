"""A request log line per request, with secrets redacted (pure ASGI, cheap), and a logging
filter that masks secrets in every record a handler writes (defence in depth)."""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packhouse.auth.redact import redact_text
from packhouse.web.deps import redact

log = logging.getLogger("packhouse.access")


class AccessLog:
    """Counts and times every request for /metrics, and logs it when `log_requests`."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - start
            path: str = scope["path"]
            self.metrics.observe(path, scope["method"], status, elapsed)
            if self.log_requests:
                client = scope.get("client")
                log.info(
                    '%s "%s %s" %d %.1fms',
                    client[0] if client else "-",
                    scope["method"],
                    printable(redact(path)),
                    status,
                    elapsed * 1000,
                )


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}


def printable(text: str) -> str:
    """`text` with control characters escaped, so a request can't forge log lines."""
    return text.translate(_CONTROL)


class RequestMetrics:
    """Request counts and latencies by area (the first path segment) and status class."""

    AREAS = frozenset({"pypi", "conda", "files", "api", "t", "healthz", "readyz", "metrics"})

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "packhouse_http_requests",
            "HTTP requests answered",
            ["area", "method", "status"],
            registry=registry,
        )
        self._latency = Histogram(
            "packhouse_http_request_seconds",
            "Time to answer an HTTP request",
            ["area"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe(self, path: str, method: str, status: int, seconds: float) -> None:
        area = path.split("/", 2)[1] if path.count("/") >= 1 else ""
        if area not in self.AREAS:
            area = "other"
        key = (area, method if method in _METHODS else "OTHER", f"{status // 100}xx")
        children = self._children.get(key)
        if children is None:
            children = (self._requests.labels(*key), self._latency.labels(area))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RedactSecrets(logging.Filter):
    """Masks tokens, URL passwords and Authorization values in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


def install_log_redaction() -> None:
    """Add the filter to the handlers of the root and uvicorn loggers (once each)."""
    for name in _LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactSecrets) for f in handler.filters):
                handler.addFilter(RedactSecrets())
