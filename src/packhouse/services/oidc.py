"""Trusted publishing: OIDC identity tokens from CI exchanged for short-lived upload tokens,
as PyPI does it (`/_/oidc/mint-token`) and as prefix.dev does it (`/api/oidc/mint_token`).

An administrator registers issuers (GitHub Actions, GitLab, a company's own) and, per
repository, publishers: claim values an identity token must carry (`repository=acme/app`,
`environment=release`). An exchange verifies the token (`auth/oidc_jwt.py`), finds the one
publisher it matches among the repositories of the asked format, remembers its `jti` so it
is exchanged once, and mints an upload token for that repository alone that lives
`oidc_token_minutes`. The mint is journaled with the claims that matched; the token is
then found by the access snapshot like any other (services/access.py).

Keys: fixed ones (from a file) are stored with the issuer; others are read from the
discovery document's `jwks_uri` through the upstream HTTP client (its network policy), kept
in memory for KEYS_TTL_SECONDS, and fetched again when a token names an unknown `kid`, at
most once per REFETCH_SECONDS per issuer.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from packhouse.auth import oidc_jwt, tokens
from packhouse.auth.oidc_jwt import IdentityTokenRefused, KeySet, UnknownKey
from packhouse.db import journal_store, oidc_store
from packhouse.db.oidc_store import Issuer, Publisher
from packhouse.db.repository_store import Repository
from packhouse.errors import (
    Conflict,
    InvalidInput,
    InvalidName,
    NotFound,
    PermissionDenied,
    UpstreamError,
)
from packhouse.services.catalog import Catalog
from packhouse.services.context import Context
from packhouse.types import Format

if TYPE_CHECKING:
    from packhouse.upstream.http import UpstreamClient

KEYS_TTL_SECONDS = 3600.0
REFETCH_SECONDS = 30.0
MAX_DOCUMENT_BYTES = 1024 * 1024
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_CLAIM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$")
# claims that say nothing about who is publishing, so a publisher cannot match on them
_GENERIC_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})
# claims shown when no publisher matches: what an administrator compares with
_SHOWN_CLAIMS = (
    "sub",
    "repository",
    "repository_owner",
    "workflow_ref",
    "job_workflow_ref",
    "ref",
    "environment",
    "project_path",
    "ci_config_ref_uri",
    "namespace_path",
)


@dataclass(frozen=True)
class Minted:
    secret: str  # shown once, to the exchanging client
    token_id: int
    expires_at: datetime
    publisher: Publisher


@dataclass
class _Keys:
    keys: KeySet
    fetched: float  # monotonic seconds
    fixed: bool


def check_issuer_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidName(
            f"invalid issuer name {name!r}: use lowercase letters, digits, '.', '_' and '-',"
            " starting with a letter or digit, at most 64 characters (e.g. github, gitlab)"
        )
    return name


def check_issuer_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:  # "http://[::1", "http://host:99999"
        raise InvalidInput(f"the issuer URL {url[:200]!r} is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput(
            f"the issuer URL {url[:200]!r} must be an http(s) URL, e.g."
            " https://token.actions.githubusercontent.com"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInput(
            f"the issuer URL {url[:200]!r} must have no query, fragment or credentials"
        )
    return url.rstrip("/")


def parse_claims(pairs: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """`NAME=VALUE` pairs (or a mapping) as the claims a publisher matches."""
    items: list[tuple[str, str]] = []
    if isinstance(pairs, Mapping):
        items = [(str(k), str(v)) for k, v in pairs.items()]
    else:
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep:
                raise InvalidInput(f"the claim {pair[:100]!r} must be NAME=VALUE")
            items.append((name.strip(), value))
    claims: dict[str, str] = {}
    for name, value in items:
        if not _CLAIM.match(name):
            raise InvalidInput(f"{name[:100]!r} is not a claim name")
        if name in _GENERIC_CLAIMS:
            raise InvalidInput(
                f"the claim {name!r} is checked for every token; match on claims that say who"
                " publishes, such as repository, environment or project_path"
            )
        if not value or len(value) > 500:
            raise InvalidInput(f"the claim {name!r} needs a value of 1 to 500 characters")
        if name in claims and claims[name] != value:
            raise InvalidInput(f"the claim {name!r} is given twice with different values")
        claims[name] = value
    if not claims:
        raise InvalidInput(
            "a publisher needs at least one claim to match, e.g. --claim repository=acme/app"
        )
    return claims


def _claim_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    return None


def matches(publisher: Publisher, claims: Mapping[str, Any]) -> bool:
    return all(_claim_text(claims.get(k)) == v for k, v in publisher.claims.items())


class OidcService:
    def __init__(self, ctx: Context, catalog: Catalog, client: UpstreamClient) -> None:
        self._ctx = ctx
        self._catalog = catalog
        self._client = client
        self._keys: dict[tuple[int, str], _Keys] = {}
        self._lock = threading.Lock()

    def audience(self) -> str:
        """The `aud` identity tokens must name: the setting, else the server's host name."""
        settings = self._ctx.settings
        return settings.oidc_audience or (urlsplit(settings.base_url).hostname or "packhouse")

    # -- issuers ----------------------------------------------------------------------------

    def add_issuer(
        self, *, actor: str, name: str, url: str, jwks: Mapping[str, Any] | None = None
    ) -> Issuer:
        check_issuer_name(name)
        url = check_issuer_url(url)
        # refuse a file that holds no usable key, or an issuer whose keys cannot be read now
        keys = KeySet(jwks) if jwks is not None else self._discover(url)
        with self._ctx.db.write() as conn:
            issuer = oidc_store.add_issuer(conn, name, url, jwks, self._ctx.clock())
            journal_store.append(
                conn,
                actor=actor,
                action="oidc.issuer.add",
                detail={"issuer": name, "url": url, "keys": "file" if jwks else "discovery"},
            )
        self._keys[(issuer.id, issuer.url)] = _Keys(keys, time.monotonic(), jwks is not None)
        return issuer

    def list_issuers(self) -> Sequence[Issuer]:
        with self._ctx.db.read() as conn:
            return oidc_store.list_issuers(conn)

    def remove_issuer(self, *, actor: str, name: str) -> Issuer:
        with self._ctx.db.write() as conn:
            issuer = oidc_store.require_issuer(conn, name)
            gone = oidc_store.publishers(conn, issuer_id=issuer.id)
            oidc_store.remove_issuer(conn, issuer.id)
            journal_store.append(
                conn,
                actor=actor,
                action="oidc.issuer.remove",
                detail={"issuer": name, "publishers": [p.id for p in gone]},
            )
        return issuer

    # -- publishers -------------------------------------------------------------------------

    def repository(self, entry: str) -> Repository:
        """FORMAT/NAME, or a bare NAME that only one repository has."""
        fmt, sep, name = entry.partition("/")
        if sep:
            try:
                return self._catalog.get(Format(fmt), name)
            except ValueError:
                raise InvalidInput(
                    f"unknown format {fmt!r} in {entry!r}: use pypi/NAME or conda/NAME"
                ) from None
        named = [r for r in self._catalog.all() if r.name == entry]
        if len(named) == 1:
            return named[0]
        if not named:
            raise NotFound(f"there is no repository {entry!r}; `packhouse repo list` shows them")
        raise InvalidInput(f"both pypi/{entry} and conda/{entry} exist: name one as FORMAT/NAME")

    def add_publisher(
        self, *, actor: str, repository: Repository, issuer: str, claims: Mapping[str, str]
    ) -> Publisher:
        wanted = parse_claims(claims)
        with self._ctx.db.write() as conn:
            found = oidc_store.require_issuer(conn, issuer)
            publisher = oidc_store.add_publisher(
                conn, found.id, repository.id, wanted, self._ctx.clock()
            )
            journal_store.append(
                conn,
                actor=actor,
                action="oidc.publisher.add",
                repository=repository.qualified_name,
                detail={"publisher": publisher.id, "issuer": issuer, "claims": wanted},
            )
        return publisher

    def list_publishers(self, repository: Repository | None = None) -> Sequence[Publisher]:
        with self._ctx.db.read() as conn:
            return oidc_store.publishers(
                conn, repository_id=None if repository is None else repository.id
            )

    def get_publisher(self, publisher_id: int) -> Publisher:
        with self._ctx.db.read() as conn:
            return oidc_store.get_publisher(conn, publisher_id)

    def remove_publisher(self, *, actor: str, publisher_id: int) -> Publisher:
        with self._ctx.db.write() as conn:
            publisher = oidc_store.get_publisher(conn, publisher_id)
            oidc_store.remove_publisher(conn, publisher_id)
            journal_store.append(
                conn,
                actor=actor,
                action="oidc.publisher.remove",
                repository=publisher.repository,
                detail={"publisher": publisher_id, "issuer": publisher.issuer_name},
            )
        return publisher

    # -- exchange ---------------------------------------------------------------------------

    def mint(self, token: str, fmt: Format) -> Minted:
        """Exchange an identity token for an upload token of the one `fmt` repository whose
        publisher it matches. IdentityTokenRefused (400) for a token that is not valid,
        PermissionDenied (403) when it is valid but no publisher matches, Conflict when
        publishers of several repositories do."""
        peeked = oidc_jwt.peek(token)
        iss = peeked.claims.get("iss")
        with self._ctx.db.read() as conn:
            issuers = oidc_store.list_issuers(conn)
        issuer = next(
            (i for i in issuers if isinstance(iss, str) and i.url == iss.rstrip("/")), None
        )
        if issuer is None:
            raise IdentityTokenRefused(
                f"the identity token's issuer {str(iss)[:200]!r} is not registered here;"
                " an administrator adds it with `packhouse oidc issuer add NAME --url URL`"
            )
        now = self._ctx.clock()
        claims = self._verified(token, issuer, now)
        with self._ctx.db.read() as conn:
            candidates = oidc_store.publishers(conn, issuer_id=issuer.id)
        matched = [
            p for p in candidates if p.repository.startswith(f"{fmt}/") and matches(p, claims)
        ]
        if not matched:
            raise PermissionDenied(
                f"no {fmt} publisher of issuer {issuer.name!r} matches this identity token"
                f" ({_describe(claims)}); a repository administrator adds one with `packhouse"
                f" oidc publisher add --repo {fmt}/NAME --issuer {issuer.name} --claim"
                " NAME=VALUE`"
            )
        repos = sorted({p.repository for p in matched})
        if len(repos) > 1:
            raise Conflict(
                f"publishers of {', '.join(repos)} all match this identity token; add a claim"
                " (such as environment) that tells them apart"
            )
        # the most specific publisher of the repository: its claims are the ones journaled
        publisher = max(matched, key=lambda p: (len(p.claims), -p.id))
        return self._record(token, issuer, publisher, claims, now)

    def _verified(self, token: str, issuer: Issuer, now: datetime) -> dict[str, Any]:
        audience = self.audience()
        keys = self._keyset(issuer)
        try:
            return oidc_jwt.verify(token, keys, issuer=issuer.url, audience=audience, now=now)
        except UnknownKey:
            if issuer.jwks is not None:
                raise
            fresher = self._keyset(issuer, unknown_kid=True)
            if fresher is keys:
                raise
            return oidc_jwt.verify(token, fresher, issuer=issuer.url, audience=audience, now=now)

    def _record(
        self,
        token: str,
        issuer: Issuer,
        publisher: Publisher,
        claims: Mapping[str, Any],
        now: datetime,
    ) -> Minted:
        jti = claims.get("jti")
        key = jti if isinstance(jti, str) and 0 < len(jti) <= 200 else _digest(token)
        identity_expires = datetime.fromtimestamp(float(claims["exp"]), now.tzinfo)
        expires = now + timedelta(minutes=self._ctx.settings.oidc_token_minutes)
        made = tokens.new_secret()
        journaled = dict(publisher.claims)
        sub = _claim_text(claims.get("sub"))
        if sub is not None:
            journaled.setdefault("sub", sub[:300])
        with self._ctx.db.write() as conn:
            token_id = oidc_store.record_mint(
                conn,
                publisher_id=publisher.id,
                issuer_id=issuer.id,
                jti=key,
                secret_sha256=made.sha256,
                claims=journaled,
                now=now,
                expires_at=expires,
                identity_expires_at=identity_expires,
            )
            if token_id is None:
                raise IdentityTokenRefused(
                    "this identity token was exchanged before (replayed); request a new one"
                    " from the CI's token service"
                )
            journal_store.append(
                conn,
                actor=f"oidc:{issuer.name}",
                action="oidc.mint",
                repository=publisher.repository,
                detail={
                    "publisher": publisher.id,
                    "issuer": issuer.name,
                    "token": token_id,
                    "claims": journaled,
                    "expires": expires.isoformat(),
                },
                now=now,
            )
            oidc_store.prune(conn, now - timedelta(hours=1))
        return Minted(made.secret, token_id, expires, publisher)

    def burn(self, secret: str) -> None:
        """Revoke a minted token at once (uv calls this when its upload is done)."""
        if not tokens.well_formed(secret):
            raise InvalidInput('send {"token": "<the minted token>"}')
        with self._ctx.db.write() as conn:
            found = oidc_store.find_token(conn, tokens.hash_secret(secret))
            if found is None:
                raise NotFound("that is not a token minted by trusted publishing here")
            token_id, revoked = found
            if not revoked:
                oidc_store.revoke_token(conn, token_id)
                journal_store.append(
                    conn, actor="oidc", action="oidc.burn", detail={"token": token_id}
                )

    # -- keys -------------------------------------------------------------------------------

    def _keyset(self, issuer: Issuer, *, unknown_kid: bool = False) -> KeySet:
        slot = (issuer.id, issuer.url)
        cached = self._keys.get(slot)
        now = time.monotonic()
        if issuer.jwks is not None:
            if cached is None or not cached.fixed:
                cached = _Keys(KeySet(issuer.jwks), now, fixed=True)
                self._keys[slot] = cached
            return cached.keys
        if cached is not None:
            age = now - cached.fetched
            if age < KEYS_TTL_SECONDS and not (unknown_kid and age >= REFETCH_SECONDS):
                return cached.keys
        with self._lock:
            again = self._keys.get(slot)
            if again is not None and again is not cached:
                return again.keys  # another request fetched them meanwhile
            try:
                keys = self._discover(issuer.url)
            except UpstreamError:
                if cached is not None:
                    cached.fetched = now  # keep the keys we have; try again later
                    return cached.keys
                raise
            self._keys[slot] = _Keys(keys, now, fixed=False)
            return keys

    def _discover(self, url: str) -> KeySet:
        """The issuer's keys: its discovery document, then the document's jwks_uri."""
        config = self._json(f"{url}/.well-known/openid-configuration", "discovery document")
        named = config.get("issuer")
        if not isinstance(named, str) or named.rstrip("/") != url:
            raise UpstreamError(
                f"the discovery document of {url} names the issuer {str(named)[:200]!r}, not"
                " itself; check the issuer URL"
            )
        jwks_uri = config.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise UpstreamError(f"the discovery document of {url} has no jwks_uri")
        document = self._json(jwks_uri, "key set")
        try:
            return KeySet(document)
        except InvalidInput as exc:
            raise UpstreamError(f"the key set of {url} is not usable: {exc.message}") from None

    def _json(self, url: str, what: str) -> dict[str, Any]:
        answer = self._client.get(
            url, headers={"Accept": "application/json"}, max_bytes=MAX_DOCUMENT_BYTES
        )
        if answer.status != 200:
            raise UpstreamError(f"the OIDC {what} {url} answered {answer.status}")
        try:
            value = json.loads(answer.body)
        except ValueError:
            raise UpstreamError(f"the OIDC {what} {url} is not JSON") from None
        if not isinstance(value, dict):
            raise UpstreamError(f"the OIDC {what} {url} is not a JSON object")
        return value


def _digest(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("ascii")).hexdigest()[:48]


def _describe(claims: Mapping[str, Any]) -> str:
    shown = [f"{k}={str(claims[k])[:120]}" for k in _SHOWN_CLAIMS if _claim_text(claims.get(k))]
    return ", ".join(shown) or "no identifying claims"
