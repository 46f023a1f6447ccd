"""Jinja2 rendering for the web UI, and the headers every HTML page carries.

The templates autoescape everything; the only markup passed through is a description
readme-renderer has already cleaned. Pages load one stylesheet and one small script from
the server itself (the UI works air-gapped), so the Content-Security-Policy allows nothing
else: no inline script or style, no other origin, no framing.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
MAX_FRAGMENTS = 256
HTML_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def size(value: int | None) -> str:
    if value is None:
        return ""
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} TB"  # pragma: no cover - unreachable


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.strftime("%Y-%m-%d %H:%M UTC")


def iso(value: datetime | None) -> str:
    if value is None:
        return ""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat(timespec="seconds")


@dataclass(frozen=True)
class Static:
    """A static file, read once, served with a content hash in its URL."""

    name: str
    body: bytes
    content_type: str

    @property
    def version(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:12]


class Renderer:
    def __init__(self) -> None:
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"], default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters.update(size=size, when=when, iso=iso)
        types = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
        self.static = {
            p.name: Static(p.name, p.read_bytes(), types.get(p.suffix, "application/octet-stream"))
            for p in STATIC.iterdir()
            if p.is_file()
        }
        self.env.globals["static"] = self.static_url
        self._fragments: OrderedDict[Hashable, Markup] = OrderedDict()
        self._lock = threading.Lock()

    def fragment(self, key: Hashable, template: str, context: dict[str, Any]) -> Markup:
        """A part of a page that is the same for every viewer, rendered once per `key`
        (which must name everything it shows: a project page's body is keyed by its JSON
        API document's ETag). A 1,000-file project's body takes ~45 ms to render."""
        with self._lock:
            found = self._fragments.get(key)
            if found is not None:
                self._fragments.move_to_end(key)
                return found
        html = Markup(self.env.get_template(template).render(**context))  # noqa: S704 (autoescaped)
        with self._lock:
            self._fragments[key] = html
            while len(self._fragments) > MAX_FRAGMENTS:
                self._fragments.popitem(last=False)
        return html

    def static_url(self, name: str) -> str:
        return f"/ui/static/{name}?v={self.static[name].version}"

    def page(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        body = self.env.get_template(template).render(request=request, **context)
        all_headers = {
            **HTML_SECURITY_HEADERS,
            "Cache-Control": "private, no-store",
            "Vary": "Cookie",
            **(headers or {}),
        }
        return HTMLResponse(body, status_code=status, headers=all_headers)


def trusted(html: str) -> Markup:
    """HTML that readme-renderer made (and cleaned): passed through unescaped."""
    return Markup(html)  # noqa: S704 (sanitised by readme-renderer's nh3 cleaner)
