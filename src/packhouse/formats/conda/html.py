"""The static `index.html` pages conda-index writes beside repodata (escaped, no scripts)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from html import escape
from typing import Any

__all__ = [
    "STYLE_CSP_SOURCE",
    "TAIL",
    "channel_index_head",
    "channel_index_html",
    "channel_index_row",
    "subdir_index_head",
    "subdir_index_html",
    "subdir_index_row",
]

_STYLE = "body{font-family:sans-serif}td,th{padding:0 1em;text-align:left}"
# The page's one inline style, as a Content-Security-Policy source (CSP 3 hash-source), so
# the server's policy can allow it and nothing else inline.
STYLE_CSP_SOURCE = (
    "'sha256-" + base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode() + "'"
)
_HEAD = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
    "<style>" + _STYLE.replace("{", "{{").replace("}", "}}") + "</style>"
    "</head><body><h2>{title}</h2>\n"
)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


TAIL = "</table></body></html>\n"


def subdir_index_head(title: str, extra_files: list[str]) -> str:
    """A subdir page up to its package rows: the title and the index files it lists."""
    rows = [
        _HEAD.format(title=escape(title)),
        "<table><tr><th>Filename</th><th>Size</th><th>sha256</th></tr>\n",
    ]
    for name in extra_files:
        rows.append(
            f'<tr><td><a href="{escape(name)}">{escape(name)}</a></td><td></td><td></td></tr>\n'
        )
    return "".join(rows)


def subdir_index_row(filename: str, record: Mapping[str, Any]) -> str:
    """One package file: name (linked), size, sha256."""
    return (
        f'<tr><td><a href="{escape(filename)}">{escape(filename)}</a></td>'
        f"<td>{_size(int(record.get('size') or 0))}</td>"
        f"<td>{escape(str(record.get('sha256', '')))}</td></tr>\n"
    )


def subdir_index_html(
    title: str, records: Mapping[str, Mapping[str, Any]], extra_files: list[str]
) -> str:
    """One row per package file, sorted (a page too big to hold is written from
    `subdir_index_head`, rows and TAIL)."""
    rows = [subdir_index_row(f, records[f]) for f in sorted(records)]
    return subdir_index_head(title, extra_files) + "".join(rows) + TAIL


def channel_index_head(title: str, subdirs: list[str]) -> str:
    rows = [_HEAD.format(title=escape(title)), "<p>"]
    rows += [f'<a href="{escape(s)}/">{escape(s)}</a> ' for s in subdirs]
    rows.append(
        "</p><table><tr><th>Package</th><th>Latest</th><th>Subdirs</th><th>Summary</th></tr>\n"
    )
    return "".join(rows)


def channel_index_row(name: str, info: Mapping[str, Any]) -> str:
    """One package name, from its channeldata.json entry."""
    return (
        f"<tr><td>{escape(name)}</td><td>{escape(str(info.get('version', '')))}</td>"
        f"<td>{escape(', '.join(info.get('subdirs', [])))}</td>"
        f"<td>{escape(str(info.get('summary', '')))}</td></tr>\n"
    )


def channel_index_html(title: str, channeldata: Mapping[str, Any]) -> str:
    head = channel_index_head(title, list(channeldata.get("subdirs", [])))
    packages = channeldata.get("packages", {})
    return head + "".join(channel_index_row(n, packages[n]) for n in sorted(packages)) + TAIL
