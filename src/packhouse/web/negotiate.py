"""Which form of an error a request wants, from its Accept header alone (RFC 9110 12.5.1):
an HTML page for a browser, JSON for a program that asks for it, plain text otherwise.

Only explicit types count; `*/*` and `text/*` say nothing about a preference. The type with
the highest q-value wins; among equal ones, HTML before JSON before text. A request whose
first choice is none of the three (pip's PEP 691 JSON, with `text/html;q=0.01`) gets None,
and the caller keeps its default (JSON for the management API, whose
every answer is JSON; plain text for the installers' paths).
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["html", "json", "text"]

_TYPES: dict[str, Kind] = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/json": "json",
    "application/problem+json": "json",
    "text/plain": "text",
}
_ORDER: tuple[Kind, ...] = ("html", "json", "text")
MAX_ACCEPT = 2000  # longer headers are read this far


def preferred(accept: str | None) -> Kind | None:
    if not accept:
        return None
    best: dict[Kind, float] = {}
    top = 0.0
    for item in accept[:MAX_ACCEPT].split(","):
        media, _, params = item.partition(";")
        media = media.strip().lower()
        if not media or media.endswith("/*"):
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if not 0 < q <= 1:
            continue
        top = max(top, q)
        kind = _TYPES.get(media)
        if kind is not None:
            best[kind] = max(best.get(kind, 0.0), q)
    # a type none of the three that the client prefers (pip's PEP 691 JSON): no preference
    return next((k for k in _ORDER if best.get(k) == top), None)
