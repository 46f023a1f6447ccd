"""API token secrets, their hashes and expiry parsing (pure: no database, no clock).

A token is `ph_` followed by 43 URL-safe characters (32 random bytes). Only its sha256 is
stored; the first characters after the prefix are kept for listings ("ph_AbCdEf…"), which
leaves well over 200 bits unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from packhouse.errors import InvalidInput

TOKEN_PREFIX = "ph_"  # noqa: S105 (the public prefix, not a secret)
SECRET_BYTES = 32
_SHAPE = re.compile(r"^ph_[A-Za-z0-9_-]{43}$")
_SHOWN = 8  # characters kept for listings, prefix included
_DURATION = re.compile(r"^(\d{1,12})\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_LIFETIME = timedelta(days=3650)  # about ten years
_ACCEPTED = (
    "use a duration such as 30d, 12h, 90m or 2w, or a date such as 2026-12-31,"
    f" at most {MAX_LIFETIME.days} days ahead"
)


@dataclass(frozen=True)
class NewSecret:
    secret: str  # shown once, never stored
    sha256: str
    shown: str  # e.g. "ph_AbCdE", safe to list


def new_secret() -> NewSecret:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    return NewSecret(secret, hash_secret(secret), secret[:_SHOWN])


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def is_token_text(text: str) -> bool:
    """Whether `text` claims to be a token (it may still be malformed)."""
    return text.startswith(TOKEN_PREFIX)


def well_formed(secret: str) -> bool:
    return _SHAPE.match(secret) is not None


def same_hash(stored: str, presented_secret: str) -> bool:
    """Constant-time comparison of a stored hash with a presented secret's hash."""
    return hmac.compare_digest(stored.encode("ascii"), hash_secret(presented_secret).encode())


def parse_expiry(text: str, now: datetime) -> datetime:
    """`30d`, `12h`, `90m`, `2w` from now, or a date (`2026-12-31`, valid through that day,
    UTC) or an ISO 8601 time; at most MAX_LIFETIME ahead. Raises InvalidInput naming the
    accepted forms."""
    value = text.strip().lower()
    shown = text if len(text) <= 40 else text[:40] + "…"
    match = _DURATION.match(value)
    if match:
        amount = int(match.group(1))
        if amount <= 0:
            raise InvalidInput(f"the expiry {shown!r} must be a positive duration")
        try:
            lifetime = timedelta(**{_UNITS[match.group(2)]: amount})
        except OverflowError:
            lifetime = None
        if lifetime is None or lifetime > MAX_LIFETIME:
            raise InvalidInput(f"the expiry {shown!r} is too far ahead: {_ACCEPTED}")
        return now + lifetime
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            expires = datetime.combine(day, time(0), tzinfo=UTC) + timedelta(days=1)
        else:
            parsed = datetime.fromisoformat(text.strip())
            expires = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"cannot read the expiry {shown!r}: {_ACCEPTED}") from None
    check_expiry(expires, now, shown)
    return expires


def check_expiry(expires: datetime, now: datetime, shown: str | None = None) -> None:
    """Refuse an expiry in the past or more than MAX_LIFETIME ahead (InvalidInput)."""
    what = "the token's expiry" if shown is None else f"the expiry {shown!r}"
    if expires <= now:
        raise InvalidInput(f"{what} is in the past")
    if expires - now > MAX_LIFETIME:
        raise InvalidInput(f"{what} is too far ahead: {_ACCEPTED}")
