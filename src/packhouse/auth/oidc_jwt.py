"""Verifying an OIDC identity token (a JWT) against its issuer's keys. Pure: the keys and the
time are passed in; nothing here fetches or reads a clock.

Only asymmetric signatures are taken (RS256/384/512, PS256, ES256/384): `alg: none` and the
HMAC algorithms, whose "key" would be public, are refused before any key is looked at. The
claims are checked here rather than by PyJWT so each refusal says exactly what was wrong:
`iss` must be the issuer, `aud` must name this server's audience, `exp` must be ahead and
`nbf`/`iat` not ahead, each with a small leeway for clock skew.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from packhouse.errors import InvalidInput

ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384"})
LEEWAY_SECONDS = 60
MAX_TOKEN_CHARS = 16 * 1024
_FAMILY = {"RS": "RSA", "PS": "RSA", "ES": "EC"}


class IdentityTokenRefused(InvalidInput):
    """An identity token that is malformed, unsigned, badly signed or not for us."""


class UnknownKey(IdentityTokenRefused):
    """Signed with a key the issuer's key set does not hold (it may have rotated)."""


@dataclass(frozen=True)
class Peeked:
    """What a token says before anything is verified: only for finding its issuer."""

    algorithm: str
    key_id: str | None
    claims: Mapping[str, Any]


class KeySet:
    """An issuer's JSON Web Key Set, parsed once: keys usable for signatures, by `kid`."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        keys = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(keys, list):
            raise InvalidInput("the key set is not a JWKS: it has no 'keys' list")
        self._keys: list[tuple[str | None, str | None, str, jwt.PyJWK]] = []
        for entry in keys:
            if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
                continue
            kty = entry.get("kty")
            if kty not in ("RSA", "EC"):
                continue
            try:
                key = jwt.PyJWK(dict(entry))
            except jwt.PyJWTError:
                continue  # a key of a kind we do not take (another curve, a broken key)
            kid = entry.get("kid") if isinstance(entry.get("kid"), str) else None
            alg = entry.get("alg") if isinstance(entry.get("alg"), str) else None
            self._keys.append((kid, alg, str(kty), key))
        if not self._keys:
            raise InvalidInput("the key set holds no RSA or EC signing key")

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def key_ids(self) -> list[str]:
        return [kid for kid, _alg, _kty, _key in self._keys if kid]

    def candidates(self, key_id: str | None, algorithm: str) -> list[jwt.PyJWK]:
        """Keys that may have made a signature of `algorithm` with header `kid` `key_id`."""
        family = _FAMILY.get(algorithm[:2])
        found = []
        for kid, alg, kty, key in self._keys:
            if key_id is not None and kid != key_id:
                continue
            if kty != family or (alg is not None and alg != algorithm):
                continue
            found.append(key)
        return found


def _segment_json(segment: str, what: str) -> Any:
    try:
        return json.loads(jwt.utils.base64url_decode(segment.encode("ascii")))
    except (ValueError, UnicodeError):
        raise IdentityTokenRefused(
            f"the identity token's {what} is not base64url-encoded JSON"
        ) from None


def peek(token: str) -> Peeked:
    """The header and claims of `token` before verification; refuses what cannot be a
    signed JWT (unsigned ones included)."""
    if not isinstance(token, str) or not token:
        raise IdentityTokenRefused('no identity token was sent: send {"token": "<JWT>"}')
    if len(token) > MAX_TOKEN_CHARS:
        raise IdentityTokenRefused(
            f"the identity token is longer than {MAX_TOKEN_CHARS} characters"
        )
    parts = token.split(".")
    if len(parts) != 3 or not token.isascii():
        raise IdentityTokenRefused(
            "the identity token is not a JWT (three base64url parts joined by dots)"
        )
    header = _segment_json(parts[0], "header")
    claims = _segment_json(parts[1], "payload")
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise IdentityTokenRefused("the identity token's header and payload must be JSON objects")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none" or not parts[2]:
        raise IdentityTokenRefused(
            "the identity token is unsigned (alg 'none' or no signature); only signed tokens"
            " are taken"
        )
    if alg not in ALGORITHMS:
        raise IdentityTokenRefused(
            f"the identity token is signed with {alg[:20]!r}; taken are"
            f" {', '.join(sorted(ALGORITHMS))}"
        )
    kid = header.get("kid")
    return Peeked(alg, kid if isinstance(kid, str) else None, claims)


def verify(
    token: str,
    keys: KeySet,
    *,
    issuer: str,
    audience: str,
    now: datetime,
    leeway: int = LEEWAY_SECONDS,
) -> dict[str, Any]:
    """The verified claims of `token`, or IdentityTokenRefused saying what is wrong
    (UnknownKey when no key of the set has its `kid`)."""
    peeked = peek(token)
    candidates = keys.candidates(peeked.key_id, peeked.algorithm)
    if not candidates:
        shown = "no kid" if peeked.key_id is None else f"kid {peeked.key_id[:80]!r}"
        raise UnknownKey(
            f"the identity token is signed by a key ({shown}, {peeked.algorithm}) that the"
            f" issuer {issuer} does not publish"
        )
    claims: dict[str, Any] | None = None
    for key in candidates:
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[peeked.algorithm],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
            break
        except jwt.PyJWTError:
            continue
    if claims is None:
        raise IdentityTokenRefused(
            f"the identity token's signature does not verify with the keys of {issuer}"
        )
    _check_claims(claims, issuer=issuer, audience=audience, now=now, leeway=leeway)
    return claims


def _time(claims: Mapping[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IdentityTokenRefused(f"the identity token's {name!r} is not a number of seconds")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise IdentityTokenRefused(f"the identity token's {name!r} is out of range") from None


def _check_claims(
    claims: Mapping[str, Any], *, issuer: str, audience: str, now: datetime, leeway: int
) -> None:
    iss = claims.get("iss")
    if not isinstance(iss, str) or iss.rstrip("/") != issuer.rstrip("/"):
        raise IdentityTokenRefused(
            f"the identity token was issued by {str(iss)[:200]!r}, not by {issuer!r}"
        )
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        shown = ", ".join(repr(str(a)[:100]) for a in audiences)
        raise IdentityTokenRefused(
            f"the identity token is for the audience {shown}, not {audience!r} (this server's"
            " audience: GET /_/oidc/audience)"
        )
    expires = _time(claims, "exp")
    if expires is None:
        raise IdentityTokenRefused("the identity token has no expiry ('exp')")
    if (now - expires).total_seconds() > leeway:
        raise IdentityTokenRefused(
            f"the identity token expired at {expires:%Y-%m-%d %H:%M:%S} UTC; request a new one"
        )
    not_before = _time(claims, "nbf")
    if not_before is not None and (not_before - now).total_seconds() > leeway:
        raise IdentityTokenRefused(
            f"the identity token is not valid before {not_before:%Y-%m-%d %H:%M:%S} UTC"
            " (is a clock wrong?)"
        )
    issued = _time(claims, "iat")
    if issued is not None and (issued - now).total_seconds() > leeway:
        raise IdentityTokenRefused(
            f"the identity token was issued in the future ({issued:%Y-%m-%d %H:%M:%S} UTC;"
            " is a clock wrong?)"
        )
