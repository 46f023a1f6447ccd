"""The static `index.html` pages conda-index writes beside repodata (escaped, no scripts)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from html import escape
from typing import Any

__all__ = ["STYLE_CSP_SOURCE", "channel_index_html", "subdir_index_html"]

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


def subdir_index_html(
    title: str, records: Mapping[str, Mapping[str, Any]], extra_files: list[str]
) -> str:
    """One row per package file: name (linked), size, build timestamp (ms), sha256."""
    rows = [
        _HEAD.format(title=escape(title)),
        "<table><tr><th>Filename</th><th>Size</th><th>sha256</th></tr>\n",
    ]
    for name in extra_files:
        rows.append(
            f'<tr><td><a href="{escape(name)}">{escape(name)}</a></td><td></td><td></td></tr>\n'
        )
    for filename in sorted(records):
        record = records[filename]
        rows.append(
            f'<tr><td><a href="{escape(filename)}">{escape(filename)}</a></td>'
            f"<td>{_size(int(record.get('size') or 0))}</td>"
            f"<td>{escape(str(record.get('sha256', '')))}</td></tr>\n"
        )
    rows.append("</table></body></html>\n")
    return "".join(rows)


def channel_index_html(title: str, channeldata: Mapping[str, Any]) -> str:
    subdirs = list(channeldata.get("subdirs", []))
    rows = [_HEAD.format(title=escape(title)), "<p>"]
    rows += [f'<a href="{escape(s)}/">{escape(s)}</a> ' for s in subdirs]
    rows.append(
        "</p><table><tr><th>Package</th><th>Latest</th><th>Subdirs</th><th>Summary</th></tr>\n"
    )
    for name, info in sorted(channeldata.get("packages", {}).items()):
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{escape(str(info.get('version', '')))}</td>"
            f"<td>{escape(', '.join(info.get('subdirs', [])))}</td>"
            f"<td>{escape(str(info.get('summary', '')))}</td></tr>\n"
        )
    rows.append("</table></body></html>\n")
    return "".join(rows)
