"""Durations (`3d`, `12h`) and sizes (`50GiB`) as people write them on the command line and
in the API. Pure; raises InvalidInput naming the accepted forms."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from packhouse.errors import InvalidInput

_DURATION = re.compile(r"^(\d{1,9})\s*(s|m|h|d|w)?$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^(\d{1,15}(?:\.\d{1,6})?)\s*([kmgt]i?b?|b)?$")
_FACTORS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `12h`, `3d`, `2w`, or a number of seconds."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise InvalidInput(
            f"cannot read the duration {_shown(text)}: use a number with s, m, h, d or w,"
            " such as 3d or 12h"
        )
    return timedelta(seconds=int(match.group(1)) * _SECONDS[match.group(2) or "s"])


def parse_size(text: str) -> int:
    """Bytes from `50GiB`, `500MB`, `1.5G`, `1024` (K, M, G, T are powers of 1024)."""
    match = _SIZE.match(text.strip().lower())
    if not match:
        raise InvalidInput(
            f"cannot read the size {_shown(text)}: use a number with KiB, MiB, GiB or TiB,"
            " such as 50GiB"
        )
    unit = (match.group(2) or "b")[0]
    return int(float(match.group(1)) * _FACTORS.get(unit, 1))


def parse_moment(text: str) -> datetime:
    """A date (`2026-06-30`, meaning the end of that day, UTC) or an ISO 8601 time."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC) + timedelta(
                days=1
            )
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"cannot read the date {_shown(text)}: use a date such as 2026-06-30 or an ISO 8601"
            " time such as 2026-06-30T12:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def aware(when: datetime) -> datetime:
    """A time read back from the database, in UTC (SQLite gives it without a zone)."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def show_size(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
