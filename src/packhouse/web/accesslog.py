"""A request log line per request, with secrets redacted (pure ASGI, cheap), and a logging
filter that masks secrets in every record a handler writes (defence in depth)."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packhouse.auth.redact import redact_text
from packhouse.web.deps import redact

log = logging.getLogger("packhouse.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            client = scope.get("client")
            log.info(
                '%s "%s %s" %d %.1fms',
                client[0] if client else "-",
                scope["method"],
                redact(scope["path"]),
                status,
                (time.perf_counter() - start) * 1000,
            )


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
