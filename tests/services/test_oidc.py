"""Trusted publishing in process: issuers (discovery through the upstream client, or keys
from a file), publishers, the exchange and its refusals, the minted token's reach, key
rotation and the journal. The issuer is a real HTTP server on loopback."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from tests.oidc_issuer import Issuer, github_identity, serve_issuer, unsigned

from packhouse.auth.oidc_jwt import IdentityTokenRefused
from packhouse.config import Settings
from packhouse.db import journal_store
from packhouse.db.engine import Database
from packhouse.errors import (
    AlreadyExists,
    AuthenticationRequired,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    UpstreamError,
)
from packhouse.services.context import Context
from packhouse.services.repos import create_repository
from packhouse.storage.memory import MemoryBlobStore
from packhouse.types import Action, Format, RepoKind
from packhouse.wiring import Services


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serve_issuer() as running:
        running.identity = github_identity()
        yield running


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    settings = Settings(
        data=tmp_path, upstream_allowed_networks=["127.0.0.0/8"], oidc_audience="packhouse-test"
    )
    db = Database("sqlite://")
    db.upgrade()
    (tmp_path / "tmp").mkdir()
    services = Services.of(Context(settings=settings, db=db, blobs=MemoryBlobStore()))
    for fmt, name in ((Format.PYPI, "main"), (Format.PYPI, "staging"), (Format.CONDA, "main")):
        create_repository(services.ctx, actor="t", fmt=fmt, name=name, kind=RepoKind.HOSTED)
    yield services
    services.close()


def registered(svc: Services, issuer: Issuer, **claims: str) -> None:
    svc.oidc.add_issuer(actor="t", name="gh", url=issuer.url)
    svc.oidc.add_publisher(
        actor="t",
        repository=svc.catalog.get(Format.PYPI, "main"),
        issuer="gh",
        claims=claims or {"repository": "acme/app"},
    )


def test_an_identity_token_becomes_an_upload_token_for_one_repository(
    svc: Services, issuer: Issuer
) -> None:
    registered(svc, issuer, repository="acme/app", environment="release")
    minted = svc.oidc.mint(issuer.token("packhouse-test"), Format.PYPI)
    assert minted.publisher.repository == "pypi/main"
    left = minted.expires_at - svc.ctx.clock()
    assert timedelta(minutes=14) < left <= timedelta(minutes=15)
    who = svc.access.authenticate(f"Bearer {minted.secret}")
    assert who.name == "oidc:gh:repo:acme/app:environment:release"
    main = svc.catalog.get(Format.PYPI, "main")
    assert svc.access.can(who, main, Action.UPLOAD)
    assert not svc.access.can(who, main, Action.ADMIN)
    assert not svc.access.can(who, svc.catalog.get(Format.PYPI, "staging"), Action.UPLOAD)
    assert not svc.access.can(who, svc.catalog.get(Format.CONDA, "main"), Action.UPLOAD)
    with pytest.raises(PermissionDenied, match="may only upload"):
        svc.access.require_user(who)
    # journaled with the claims that matched
    with svc.ctx.db.read() as conn:
        mint = [e for e in journal_store.entries(conn) if e.action == "oidc.mint"]
    assert len(mint) == 1
    assert mint[0].repository == "pypi/main"
    assert mint[0].detail is not None
    assert mint[0].detail["claims"] == {
        "repository": "acme/app",
        "environment": "release",
        "sub": "repo:acme/app:environment:release",
    }
    assert minted.secret not in json.dumps(mint[0].detail)


def test_ecdsa_tokens_are_taken_too(svc: Services, issuer: Issuer) -> None:
    registered(svc, issuer)
    assert svc.oidc.mint(issuer.token("packhouse-test", algorithm="ES256"), Format.PYPI)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda i: i.token("other-audience"),
            "for the audience 'other-audience', not 'packhouse-test'",
        ),
        (lambda i: i.token("packhouse-test", exp=1_000_000_000), "expired at 2001-09-09"),
        (lambda i: i.token("packhouse-test", exp=None), "has no expiry"),
        (lambda i: i.token("packhouse-test", nbf=4_000_000_000), "not valid before"),
        (lambda i: i.token("packhouse-test", iss="https://evil.example"), "is not registered here"),
        (lambda i: unsigned(i.claims("packhouse-test")), "unsigned"),
        (
            lambda i: i.token("packhouse-test", algorithm="RS512")[:-8] + "AAAAAAAA",
            "does not verify",
        ),
        (lambda i: "not.a.jwt", "not base64url-encoded JSON"),
        (lambda i: "x" * 20, "not a JWT"),
    ],
)
def test_bad_identity_tokens_are_refused_saying_why(
    svc: Services, issuer: Issuer, make: Any, message: str
) -> None:
    registered(svc, issuer)
    with pytest.raises(IdentityTokenRefused, match=message):
        svc.oidc.mint(make(issuer), Format.PYPI)


def test_a_token_signed_with_the_public_key_as_an_hmac_secret_is_refused(
    svc: Services, issuer: Issuer
) -> None:
    registered(svc, issuer)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": issuer.kid}).encode())
    body = base64.urlsafe_b64encode(json.dumps(issuer.claims("packhouse-test")).encode())
    forged = f"{header.decode().rstrip('=')}.{body.decode().rstrip('=')}.c2ln"
    with pytest.raises(IdentityTokenRefused, match="signed with 'HS256'"):
        svc.oidc.mint(forged, Format.PYPI)


def test_an_identity_token_is_exchanged_once(svc: Services, issuer: Issuer) -> None:
    registered(svc, issuer)
    token = issuer.token("packhouse-test")
    svc.oidc.mint(token, Format.PYPI)
    with pytest.raises(IdentityTokenRefused, match="exchanged before"):
        svc.oidc.mint(token, Format.PYPI)
    # without a jti, the token itself is what is remembered
    bare = issuer.token("packhouse-test", jti=None)
    svc.oidc.mint(bare, Format.PYPI)
    with pytest.raises(IdentityTokenRefused, match="replayed"):
        svc.oidc.mint(bare, Format.PYPI)


def test_claims_must_all_match_and_name_one_repository(svc: Services, issuer: Issuer) -> None:
    registered(svc, issuer, repository="acme/app", environment="production")
    with pytest.raises(PermissionDenied, match="no pypi publisher of issuer 'gh' matches") as e:
        svc.oidc.mint(issuer.token("packhouse-test"), Format.PYPI)
    assert "environment=release" in e.value.message  # says what the token carried
    with pytest.raises(PermissionDenied, match="no conda publisher"):
        svc.oidc.mint(issuer.token("packhouse-test", environment="production"), Format.CONDA)
    for name in ("main", "staging"):
        svc.oidc.add_publisher(
            actor="t",
            repository=svc.catalog.get(Format.PYPI, name),
            issuer="gh",
            claims={"repository": "acme/app"},
        )
    with pytest.raises(Conflict, match="pypi/main, pypi/staging all match"):
        svc.oidc.mint(issuer.token("packhouse-test"), Format.PYPI)


def test_minted_tokens_expire_and_burn(svc: Services, issuer: Issuer) -> None:
    registered(svc, issuer)
    minted = svc.oidc.mint(issuer.token("packhouse-test"), Format.PYPI)
    svc.oidc.burn(minted.secret)
    with pytest.raises(AuthenticationRequired, match="unknown or was revoked"):
        svc.access.authenticate(f"Bearer {minted.secret}")
    with pytest.raises(NotFound):
        svc.oidc.burn("ph-" + "a" * 43)
    later = svc.oidc.mint(issuer.token("packhouse-test"), Format.PYPI)
    start = svc.ctx.clock()
    svc.ctx.clock = lambda: start + timedelta(minutes=16)
    with pytest.raises(AuthenticationRequired, match="trusted-publishing token expired"):
        svc.access.authenticate(
            f"Basic {base64.b64encode(f'__token__:{later.secret}'.encode()).decode()}"
        )


def test_keys_are_cached_and_refetched_for_an_unknown_kid(svc: Services, issuer: Issuer) -> None:
    registered(svc, issuer)
    svc.oidc.mint(issuer.token("packhouse-test"), Format.PYPI)
    svc.oidc.mint(issuer.token("packhouse-test"), Format.PYPI)
    assert issuer.requests.count("/jwks") == 1  # once, when the issuer was added
    issuer.rotate()
    # within REFETCH_SECONDS of the last fetch the set is not asked again
    with pytest.raises(IdentityTokenRefused, match="does not publish"):
        svc.oidc.mint(issuer.token("packhouse-test"), Format.PYPI)
    for cached in svc.oidc._keys.values():
        cached.fetched -= 60
    svc.oidc.mint(issuer.token("packhouse-test"), Format.PYPI)
    assert issuer.requests.count("/jwks") == 2


def test_keys_from_a_file_need_no_network(svc: Services, issuer: Issuer) -> None:
    svc.oidc.add_issuer(actor="t", name="offline", url=issuer.url, jwks=issuer.jwks())
    assert "/jwks" not in issuer.requests
    svc.oidc.add_publisher(
        actor="t",
        repository=svc.catalog.get(Format.CONDA, "main"),
        issuer="offline",
        claims={"repository_owner": "acme"},
    )
    minted = svc.oidc.mint(issuer.token("packhouse-test"), Format.CONDA)
    assert minted.publisher.repository == "conda/main"
    assert issuer.requests == []


def test_issuer_and_publisher_input_is_checked(svc: Services, issuer: Issuer) -> None:
    with pytest.raises(InvalidInput, match="invalid issuer name"):
        svc.oidc.add_issuer(actor="t", name="Git Hub", url=issuer.url)
    with pytest.raises(InvalidInput, match="must be an http"):
        svc.oidc.add_issuer(actor="t", name="gh", url="ftp://example.com")
    with pytest.raises(UpstreamError, match="answered 404"):
        svc.oidc.add_issuer(actor="t", name="gh", url=f"{issuer.url}/nothing")
    with pytest.raises(InvalidInput, match="no RSA or EC signing key"):
        svc.oidc.add_issuer(actor="t", name="gh", url=issuer.url, jwks={"keys": []})
    registered(svc, issuer)
    with pytest.raises(AlreadyExists):
        svc.oidc.add_issuer(actor="t", name="gh", url=issuer.url)
    main = svc.catalog.get(Format.PYPI, "main")
    with pytest.raises(AlreadyExists, match="already matches"):
        svc.oidc.add_publisher(
            actor="t", repository=main, issuer="gh", claims={"repository": "acme/app"}
        )
    with pytest.raises(InvalidInput, match="checked for every token"):
        svc.oidc.add_publisher(actor="t", repository=main, issuer="gh", claims={"aud": "x"})
    with pytest.raises(NotFound, match="no OIDC issuer named 'gl'"):
        svc.oidc.add_publisher(actor="t", repository=main, issuer="gl", claims={"a": "b"})
    with pytest.raises(InvalidInput, match="name one as FORMAT/NAME"):
        svc.oidc.repository("main")


def test_loopback_issuers_follow_the_network_policy(tmp_path: Path, issuer: Issuer) -> None:
    db = Database("sqlite://")
    db.upgrade()
    (tmp_path / "tmp").mkdir()
    services = Services.of(
        Context(settings=Settings(data=tmp_path), db=db, blobs=MemoryBlobStore())
    )
    try:
        with pytest.raises(UpstreamError, match="upstream_allowed_networks"):
            services.oidc.add_issuer(actor="t", name="gh", url=issuer.url)
    finally:
        services.close()


def test_removing_a_publisher_stops_its_tokens(svc: Services, issuer: Issuer) -> None:
    registered(svc, issuer)
    minted = svc.oidc.mint(issuer.token("packhouse-test"), Format.PYPI)
    (publisher,) = svc.oidc.list_publishers()
    svc.oidc.remove_publisher(actor="t", publisher_id=publisher.id)
    with pytest.raises(AuthenticationRequired):
        svc.access.authenticate(f"Bearer {minted.secret}")
    svc.oidc.remove_issuer(actor="t", name="gh")
    assert svc.oidc.list_issuers() == []
    assert jwt  # PyJWT is the verifier under test
