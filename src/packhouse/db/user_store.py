"""Users and per-repository permissions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from packhouse.db.schema import group_members, groups, permissions, users
from packhouse.errors import AlreadyExists, NotFound


@dataclass(frozen=True)
class User:
    id: int
    name: str
    password_hash: str | None
    is_admin: bool
    disabled: bool
    password_changed_at: datetime | None
    # A service account (a CI bot): no password, never signs in, only holds tokens.
    is_service: bool = False


@dataclass(frozen=True)
class Grant:
    repository_id: int
    principal_kind: str  # user, group, special
    principal: str
    action: str


def _user(row: Row[Any]) -> User:
    return User(
        row.id,
        row.name,
        row.password_hash,
        row.is_admin,
        row.disabled,
        row.password_changed_at,
        row.is_service,
    )


def get_user(conn: Connection, name: str) -> User | None:
    row = conn.execute(select(users).where(users.c.name == name)).first()
    return None if row is None else _user(row)


def require_user(conn: Connection, name: str) -> User:
    user = get_user(conn, name)
    if user is None:
        raise NotFound(f"there is no user named {name!r}")
    return user


def list_users(conn: Connection) -> Sequence[User]:
    return [_user(r) for r in conn.execute(select(users).order_by(users.c.name))]


def create_user(
    conn: Connection,
    name: str,
    password_hash: str | None,
    is_admin: bool,
    *,
    is_service: bool = False,
) -> User:
    if get_user(conn, name) is not None:
        raise AlreadyExists(f"a user named {name!r} already exists")
    now = datetime.now(UTC)
    conn.execute(
        insert(users).values(
            name=name,
            password_hash=password_hash,
            is_admin=is_admin,
            disabled=False,
            is_service=is_service,
            password_changed_at=now,
            created_at=now,
        )
    )
    return require_user(conn, name)


def update_user(conn: Connection, user_id: int, **values: Any) -> None:
    if "password_hash" in values:
        values["password_changed_at"] = datetime.now(UTC)
    conn.execute(update(users).where(users.c.id == user_id).values(**values))


def user_count(conn: Connection) -> int:
    return len(conn.execute(select(users.c.id).limit(1)).all())


def grants_for(conn: Connection, repository_id: int) -> Sequence[Grant]:
    rows = conn.execute(select(permissions).where(permissions.c.repository_id == repository_id))
    return [Grant(r.repository_id, r.principal_kind, r.principal, r.action) for r in rows]


def all_grants(conn: Connection) -> Sequence[Grant]:
    rows = conn.execute(select(permissions))
    return [Grant(r.repository_id, r.principal_kind, r.principal, r.action) for r in rows]


def grant(
    conn: Connection, repository_id: int, principal_kind: str, principal: str, action: str
) -> None:
    revoke(conn, repository_id, principal_kind, principal)
    conn.execute(
        insert(permissions).values(
            repository_id=repository_id,
            principal_kind=principal_kind,
            principal=principal,
            action=action,
        )
    )


def granted(
    conn: Connection, repository_id: int, principal_kind: str, principal: str
) -> str | None:
    """The action a principal holds on a repository itself (not through a group), if any."""
    found = conn.execute(
        select(permissions.c.action).where(
            permissions.c.repository_id == repository_id,
            permissions.c.principal_kind == principal_kind,
            permissions.c.principal == principal,
        )
    ).scalar()
    return str(found) if found is not None else None


def revoke(conn: Connection, repository_id: int, principal_kind: str, principal: str) -> None:
    conn.execute(
        delete(permissions).where(
            permissions.c.repository_id == repository_id,
            permissions.c.principal_kind == principal_kind,
            permissions.c.principal == principal,
        )
    )


@dataclass(frozen=True)
class Group:
    id: int
    name: str
    members: tuple[str, ...]


def get_group(conn: Connection, name: str) -> Group | None:
    row = conn.execute(select(groups).where(groups.c.name == name)).first()
    if row is None:
        return None
    members = conn.execute(
        select(users.c.name)
        .select_from(group_members.join(users, users.c.id == group_members.c.user_id))
        .where(group_members.c.group_id == row.id)
        .order_by(users.c.name)
    )
    return Group(row.id, row.name, tuple(m.name for m in members))


def require_group(conn: Connection, name: str) -> Group:
    group = get_group(conn, name)
    if group is None:
        raise NotFound(f"there is no group named {name!r}; `packhouse group list` shows them")
    return group


def list_groups(conn: Connection) -> Sequence[Group]:
    names = [r.name for r in conn.execute(select(groups.c.name).order_by(groups.c.name))]
    return [require_group(conn, n) for n in names]


def create_group(conn: Connection, name: str) -> Group:
    if get_group(conn, name) is not None:
        raise AlreadyExists(f"a group named {name!r} already exists")
    conn.execute(insert(groups).values(name=name, created_at=datetime.now(UTC)))
    return require_group(conn, name)


def delete_group(conn: Connection, group: Group) -> None:
    conn.execute(delete(groups).where(groups.c.id == group.id))
    conn.execute(
        delete(permissions).where(
            permissions.c.principal_kind == "group", permissions.c.principal == group.name
        )
    )


def add_member(conn: Connection, group: Group, user: User) -> bool:
    """Add `user` to `group`; False when they were in it already."""
    if user.name in group.members:
        return False
    conn.execute(insert(group_members).values(group_id=group.id, user_id=user.id))
    return True


def remove_member(conn: Connection, group: Group, user: User) -> bool:
    """Take `user` out of `group`; False when they were not in it."""
    result = conn.execute(
        delete(group_members).where(
            group_members.c.group_id == group.id, group_members.c.user_id == user.id
        )
    )
    return bool(result.rowcount)


def all_memberships(conn: Connection) -> dict[int, frozenset[str]]:
    """user id -> names of the user's groups, in one query."""
    found: dict[int, set[str]] = {}
    rows = conn.execute(
        select(group_members.c.user_id, groups.c.name).select_from(
            group_members.join(groups, groups.c.id == group_members.c.group_id)
        )
    )
    for r in rows:
        found.setdefault(r.user_id, set()).add(r.name)
    return {k: frozenset(v) for k, v in found.items()}
