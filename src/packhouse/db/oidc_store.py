"""Trusted publishing rows: OIDC issuers, publishers, and the upload tokens minted for them
(only a minted secret's sha256 is stored)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from packhouse.db.schema import oidc_issuers, oidc_publishers, oidc_tokens, repositories
from packhouse.errors import AlreadyExists, NotFound


@dataclass(frozen=True)
class Issuer:
    id: int
    name: str
    url: str
    jwks: Mapping[str, Any] | None  # fixed keys; None: from the discovery document
    created_at: datetime


@dataclass(frozen=True)
class Publisher:
    id: int
    issuer_id: int
    issuer_name: str
    repository_id: int
    repository: str  # FORMAT/NAME
    claims: Mapping[str, str]
    created_at: datetime


@dataclass(frozen=True)
class MintedToken:
    id: int
    publisher_id: int
    repository: str  # FORMAT/NAME of the one repository it may upload to
    issuer_name: str
    secret_sha256: str
    claims: Mapping[str, str]
    expires_at: datetime


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- issuers ------------------------------------------------------------------------------


def _issuer(row: Row[Any]) -> Issuer:
    return Issuer(row.id, row.name, row.url, row.jwks, _utc(row.created_at))


def add_issuer(
    conn: Connection, name: str, url: str, jwks: Mapping[str, Any] | None, now: datetime
) -> Issuer:
    if find_issuer(conn, name) is not None:
        raise AlreadyExists(f"there is an OIDC issuer named {name!r} already")
    conn.execute(
        insert(oidc_issuers).values(
            name=name, url=url, jwks=None if jwks is None else dict(jwks), created_at=now
        )
    )
    found = find_issuer(conn, name)
    assert found is not None
    return found


def find_issuer(conn: Connection, name: str) -> Issuer | None:
    row = conn.execute(select(oidc_issuers).where(oidc_issuers.c.name == name)).first()
    return None if row is None else _issuer(row)


def require_issuer(conn: Connection, name: str) -> Issuer:
    found = find_issuer(conn, name)
    if found is None:
        raise NotFound(
            f"there is no OIDC issuer named {name!r}; `packhouse oidc issuer list` shows them"
        )
    return found


def get_issuer(conn: Connection, issuer_id: int) -> Issuer:
    row = conn.execute(select(oidc_issuers).where(oidc_issuers.c.id == issuer_id)).first()
    if row is None:
        raise NotFound(f"there is no OIDC issuer with id {issuer_id}")
    return _issuer(row)


def list_issuers(conn: Connection) -> Sequence[Issuer]:
    return [_issuer(r) for r in conn.execute(select(oidc_issuers).order_by(oidc_issuers.c.name))]


def remove_issuer(conn: Connection, issuer_id: int) -> None:
    # publishers and their minted tokens go with it (SQLite without foreign keys too)
    ids = select(oidc_publishers.c.id).where(oidc_publishers.c.issuer_id == issuer_id)
    conn.execute(delete(oidc_tokens).where(oidc_tokens.c.publisher_id.in_(ids)))
    conn.execute(delete(oidc_publishers).where(oidc_publishers.c.issuer_id == issuer_id))
    conn.execute(delete(oidc_issuers).where(oidc_issuers.c.id == issuer_id))


# -- publishers ---------------------------------------------------------------------------


def _publishers_select() -> Any:
    return (
        select(
            oidc_publishers,
            oidc_issuers.c.name.label("issuer_name"),
            repositories.c.format.label("repo_format"),
            repositories.c.name.label("repo_name"),
        )
        .select_from(
            oidc_publishers.join(
                oidc_issuers, oidc_issuers.c.id == oidc_publishers.c.issuer_id
            ).join(repositories, repositories.c.id == oidc_publishers.c.repository_id)
        )
        .order_by(oidc_publishers.c.id)
    )


def _publisher(row: Row[Any]) -> Publisher:
    return Publisher(
        id=row.id,
        issuer_id=row.issuer_id,
        issuer_name=row.issuer_name,
        repository_id=row.repository_id,
        repository=f"{row.repo_format}/{row.repo_name}",
        claims=dict(row.claims),
        created_at=_utc(row.created_at),
    )


def add_publisher(
    conn: Connection,
    issuer_id: int,
    repository_id: int,
    claims: Mapping[str, str],
    now: datetime,
) -> Publisher:
    for existing in publishers(conn, issuer_id=issuer_id):
        if existing.repository_id == repository_id and dict(existing.claims) == dict(claims):
            raise AlreadyExists(
                f"publisher {existing.id} already matches these claims for {existing.repository}"
            )
    result = conn.execute(
        insert(oidc_publishers).values(
            issuer_id=issuer_id, repository_id=repository_id, claims=dict(claims), created_at=now
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return get_publisher(conn, int(key[0]))


MAX_ID = 2**63 - 1


def get_publisher(conn: Connection, publisher_id: int) -> Publisher:
    row = None
    if 1 <= publisher_id <= MAX_ID:
        row = conn.execute(_publishers_select().where(oidc_publishers.c.id == publisher_id)).first()
    if row is None:
        raise NotFound(
            f"there is no publisher with id {publisher_id}; `packhouse oidc publisher list`"
            " shows them"
        )
    return _publisher(row)


def publishers(
    conn: Connection, *, issuer_id: int | None = None, repository_id: int | None = None
) -> Sequence[Publisher]:
    query = _publishers_select()
    if issuer_id is not None:
        query = query.where(oidc_publishers.c.issuer_id == issuer_id)
    if repository_id is not None:
        query = query.where(oidc_publishers.c.repository_id == repository_id)
    return [_publisher(r) for r in conn.execute(query)]


def remove_publisher(conn: Connection, publisher_id: int) -> None:
    conn.execute(delete(oidc_tokens).where(oidc_tokens.c.publisher_id == publisher_id))
    conn.execute(delete(oidc_publishers).where(oidc_publishers.c.id == publisher_id))


# -- minted tokens ------------------------------------------------------------------------


def record_mint(
    conn: Connection,
    *,
    publisher_id: int,
    issuer_id: int,
    jti: str,
    secret_sha256: str,
    claims: Mapping[str, str],
    now: datetime,
    expires_at: datetime,
    identity_expires_at: datetime,
) -> int | None:
    """The new token's id, or None when this identity token (issuer, jti) was used before.
    Writes are serialised (db.write), so the check and the insert cannot interleave."""
    if jti_used(conn, issuer_id, jti):
        return None
    result = conn.execute(
        insert(oidc_tokens).values(
            publisher_id=publisher_id,
            issuer_id=issuer_id,
            jti=jti,
            secret_sha256=secret_sha256,
            claims=dict(claims),
            created_at=now,
            expires_at=expires_at,
            identity_expires_at=identity_expires_at,
            revoked=False,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def jti_used(conn: Connection, issuer_id: int, jti: str) -> bool:
    row = conn.execute(
        select(oidc_tokens.c.id).where(
            oidc_tokens.c.issuer_id == issuer_id, oidc_tokens.c.jti == jti
        )
    ).first()
    return row is not None


def live_tokens(conn: Connection, since: datetime) -> Sequence[MintedToken]:
    """Minted tokens not revoked that expire after `since` (expired ones answer 'expired')."""
    query = (
        select(
            oidc_tokens,
            oidc_issuers.c.name.label("issuer_name"),
            repositories.c.format.label("repo_format"),
            repositories.c.name.label("repo_name"),
        )
        .select_from(
            oidc_tokens.join(oidc_publishers, oidc_publishers.c.id == oidc_tokens.c.publisher_id)
            .join(oidc_issuers, oidc_issuers.c.id == oidc_publishers.c.issuer_id)
            .join(repositories, repositories.c.id == oidc_publishers.c.repository_id)
        )
        .where(oidc_tokens.c.revoked.is_(False), oidc_tokens.c.expires_at > since)
    )
    return [
        MintedToken(
            id=r.id,
            publisher_id=r.publisher_id,
            repository=f"{r.repo_format}/{r.repo_name}",
            issuer_name=r.issuer_name,
            secret_sha256=r.secret_sha256,
            claims=dict(r.claims),
            expires_at=_utc(r.expires_at),
        )
        for r in conn.execute(query)
    ]


def find_token(conn: Connection, secret_sha256: str) -> tuple[int, bool] | None:
    """(id, revoked) of the minted token with this secret hash."""
    row = conn.execute(
        select(oidc_tokens.c.id, oidc_tokens.c.revoked).where(
            oidc_tokens.c.secret_sha256 == secret_sha256
        )
    ).first()
    return None if row is None else (int(row.id), bool(row.revoked))


def revoke_token(conn: Connection, token_id: int) -> None:
    conn.execute(update(oidc_tokens).where(oidc_tokens.c.id == token_id).values(revoked=True))


def prune(conn: Connection, before: datetime) -> int:
    """Forget tokens whose minted token and identity token both expired before `before`."""
    result = conn.execute(
        delete(oidc_tokens).where(
            oidc_tokens.c.expires_at < before, oidc_tokens.c.identity_expires_at < before
        )
    )
    return int(result.rowcount or 0)
