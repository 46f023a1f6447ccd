"""API token secrets, their hashes and expiry parsing (pure: no database, no clock).

A token is `ph-` followed by 43 letters and digits (base62, 256 bits): only letters, digits
and hyphens, so every conda client takes it inside a `/t/<token>/` URL segment (conda's
`split_anaconda_token` reads `/t/([a-zA-Z0-9-]*)`, libmamba allows an underscore only in the
first two characters), and the fixed prefix lets secret scanners match it. Tokens made
before are `ph_` and 43 URL-safe base64 characters; they keep working wherever they worked
(Basic, Bearer, rattler's `/t/`). Only a token's sha256 is stored; the first characters are
kept for listings ("ph-AbCdE…"), which leaves well over 200 bits unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from packhouse.errors import InvalidInput

TOKEN_PREFIX = "ph-"  # noqa: S105 (the public prefix, not a secret)
LEGACY_PREFIX = "ph_"  # tokens made before the `ph-` form
PREFIXES = (TOKEN_PREFIX, LEGACY_PREFIX)
_ALPHABET = string.ascii_letters + string.digits
SECRET_CHARS = 43  # 43 * log2(62) = 256.03 bits
_SHAPE = re.compile(r"ph-[A-Za-z0-9]{43}")  # used with fullmatch (`$` allows a final \n)
_LEGACY_SHAPE = re.compile(r"ph_[A-Za-z0-9_-]{43}")
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
    shown: str  # e.g. "ph-AbCdE", safe to list


def new_secret() -> NewSecret:
    secret = TOKEN_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_CHARS))
    return NewSecret(secret, hash_secret(secret), secret[:_SHOWN])


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def is_token_text(text: str) -> bool:
    """Whether a Basic password claims to be a token (it may still be malformed): anything
    starting `ph_`, or a whole `ph-` token. A password set before the `ph-` form that starts
    with `ph-` (allowed then) is still taken for a password unless it has a token's shape."""
    return text.startswith(LEGACY_PREFIX) or _SHAPE.fullmatch(text) is not None


def well_formed(secret: str) -> bool:
    """The shape of a token, either form (`ph-` + 43 base62, or the older `ph_` + 43)."""
    return _SHAPE.fullmatch(secret) is not None or _LEGACY_SHAPE.fullmatch(secret) is not None


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
