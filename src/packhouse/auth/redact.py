"""Masking secrets in anything that may be logged, stored in the journal or shown.

Pure string functions: `/t/<token>/` URL segments, tokens anywhere (`ph-` + letters and
digits, and the older `ph_` form), passwords in URLs (`scheme://user:password@host`) and
Authorization header values.
"""

from __future__ import annotations

import re

MASK = "***"
# `/t/<token>` starting a path, or after `/conda` when it starts like a token (conda builds
# `/conda/t/<token>/<repo>/` from `/t/<token>/conda/<repo>/`; a channel may be named `t`)
_TOKEN_SEGMENT = re.compile(r"^(?P<head>(?:/conda(?=/t/ph[-_]))?)/t/[^/?#]+")
# in free text, a `/t/<token>` that starts a path: after a host, a quote, a space or the start
_TOKEN_SEGMENT_IN_TEXT = re.compile(
    r"(?P<head>(?:^|[\s\"'(=]|://[^/\s]+)(?:/conda(?=/t/ph[-_]))?)/t/[^/?#\s\"']+"
)
_TOKEN = re.compile(r"ph_[A-Za-z0-9_-]{8,}")
# `ph-` also starts ordinary words ("graph-x", "ph-utils"): not after a name character, and
# 16 or more letters and digits (a token has 43; a word of 16 without a hyphen is rare)
_NEW_TOKEN = re.compile(r"(?<![A-Za-z0-9_.-])ph-[A-Za-z0-9]{16,}")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*):[^/@\s]*@")
_AUTH_HEADER = re.compile(
    r"(?P<head>authorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer)?\s*)[^\s'\",]+", re.IGNORECASE
)


def redact_path(path: str) -> str:
    """A URL path fit for logs: the token of a `/t/<token>/` segment is masked."""
    if not path.startswith(("/t/", "/conda/t/")):
        return path
    return _TOKEN_SEGMENT.sub(rf"\g<head>/t/{MASK}", path)


def redact_url(url: str) -> str:
    """A URL without the password of its user info or a `/t/<token>/` segment."""
    return redact_text(url)


def redact_text(text: str) -> str:
    """Mask every secret-looking part of free text (log messages, error details)."""
    if "ph_" in text:
        text = _TOKEN.sub(f"ph_{MASK}", text)
    if "ph-" in text:
        text = _NEW_TOKEN.sub(f"ph-{MASK}", text)
    if "/t/" in text:
        text = _TOKEN_SEGMENT_IN_TEXT.sub(rf"\g<head>/t/{MASK}", text)
    if "@" in text:
        text = _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", text)
    if "uthorization" in text or "UTHORIZATION" in text:
        text = _AUTH_HEADER.sub(rf"\g<head>{MASK}", text)
    return text
