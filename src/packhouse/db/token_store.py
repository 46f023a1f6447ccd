"""API tokens: rows keyed by the sha256 of their secret (the secret is never stored)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from packhouse.db.schema import tokens, users
from packhouse.errors import NotFound
from packhouse.types import Action


@dataclass(frozen=True)
class Token:
    id: int
    user_id: int
    user_name: str
    name: str
    shown: str  # the first characters of the secret, safe to list
    secret_sha256: str
    repositories: tuple[str, ...] | None  # None: every repository the owner can reach
    actions: frozenset[Action]
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _token(row: Row[Any]) -> Token:
    created = _utc(row.created_at)
    assert created is not None
    return Token(
        id=row.id,
        user_id=row.user_id,
        user_name=row.user_name,
        name=row.name,
        shown=row.prefix,
        secret_sha256=row.secret_sha256,
        repositories=None if row.repositories is None else tuple(row.repositories),
        actions=frozenset(Action(a) for a in row.actions),
        expires_at=_utc(row.expires_at),
        created_at=created,
        last_used_at=_utc(row.last_used_at),
        revoked=row.revoked,
    )


def _select() -> Any:
    return select(tokens, users.c.name.label("user_name")).select_from(
        tokens.join(users, users.c.id == tokens.c.user_id)
    )


def create(
    conn: Connection,
    *,
    user_id: int,
    name: str,
    shown: str,
    secret_sha256: str,
    repositories: Sequence[str] | None,
    actions: Sequence[Action],
    expires_at: datetime | None,
    now: datetime,
) -> Token:
    result = conn.execute(
        insert(tokens).values(
            user_id=user_id,
            name=name,
            prefix=shown,
            secret_sha256=secret_sha256,
            repositories=None if repositories is None else list(repositories),
            actions=[a.value for a in actions],
            expires_at=expires_at,
            created_at=now,
            last_used_at=None,
            revoked=False,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return get(conn, int(key[0]))


MAX_ID = 2**63 - 1  # SQL's BIGINT; a larger number is no token's id (and SQLite overflows)


def get(conn: Connection, token_id: int) -> Token:
    row = None
    if 1 <= token_id <= MAX_ID:
        row = conn.execute(_select().where(tokens.c.id == token_id)).first()
    if row is None:
        raise NotFound(f"there is no token with id {token_id}; `packhouse token list` shows them")
    return _token(row)


def live(conn: Connection) -> Sequence[Token]:
    """Every token not revoked (expired ones included: they answer 'expired', not 'unknown')."""
    return [_token(r) for r in conn.execute(_select().where(tokens.c.revoked.is_(False)))]


def list_tokens(
    conn: Connection, user_id: int | None = None, include_revoked: bool = False
) -> Sequence[Token]:
    query = _select().order_by(tokens.c.id)
    if user_id is not None:
        query = query.where(tokens.c.user_id == user_id)
    if not include_revoked:
        query = query.where(tokens.c.revoked.is_(False))
    return [_token(r) for r in conn.execute(query)]


def revoke(conn: Connection, token_id: int) -> None:
    conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked=True))


def touch(conn: Connection, token_id: int, when: datetime) -> None:
    conn.execute(update(tokens).where(tokens.c.id == token_id).values(last_used_at=when))
