"""Users, groups and API tokens: the use cases behind `packhouse user|group|token` and the
management API. Every change writes a journal entry, which also moves the serial so the
access snapshot of every process sees it at once. Secrets never reach the journal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from packhouse.auth import tokens
from packhouse.auth.passwords import hash_password
from packhouse.db import journal_store, token_store, user_store
from packhouse.db.token_store import Token
from packhouse.db.user_store import Group, User
from packhouse.errors import InvalidInput, InvalidName, NotFound, PermissionDenied
from packhouse.services.access import AccessService
from packhouse.services.catalog import Catalog
from packhouse.services.context import Context
from packhouse.types import Action

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
_ORDER = [Action.READ, Action.UPLOAD, Action.ADMIN]


def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name) or name == "__token__":
        raise InvalidName(
            f"invalid {kind} name {name!r}: use letters, digits, '.', '_', '@', '+' and '-',"
            " starting with a letter or digit, at most 100 characters"
        )
    return name


# -- users ------------------------------------------------------------------------------


def create_user(
    ctx: Context,
    *,
    actor: str,
    name: str,
    password: str | None,
    admin: bool,
    service: bool = False,
) -> User:
    """A user with a password, or (`service`) a service account: no password, it cannot
    sign in and acts only through the tokens made for it (a CI pipeline's)."""
    check_name("user", name)
    if service and password is not None:
        raise InvalidInput(
            f"{name!r} is to be a service account, which has no password: leave it out and"
            f" give it a token (`packhouse token create --user {name} ...`)"
        )
    if password is None and not service:
        raise InvalidInput(
            "a user needs a password; for a CI bot that only holds tokens, create a service"
            f" account: `packhouse user add {name} --service`"
        )
    hashed = None if password is None else hash_password(password)
    detail: dict[str, object] = {"user": name, "admin": admin}
    if service:
        detail["service"] = True
    with ctx.db.write() as conn:
        journal_store.append(conn, actor=actor, action="user.create", detail=detail)
        return user_store.create_user(conn, name, hashed, admin, is_service=service)


def set_password(ctx: Context, *, actor: str, name: str, password: str) -> None:
    hashed = hash_password(password)
    with ctx.db.write() as conn:
        user = user_store.require_user(conn, name)
        if user.is_service:
            raise InvalidInput(
                f"{name!r} is a service account: it has no password and acts only through"
                f" tokens (`packhouse token create --user {name} --repo REPO --scope upload`)"
            )
        journal_store.append(conn, actor=actor, action="user.password", detail={"user": name})
        user_store.update_user(conn, user.id, password_hash=hashed)


def update_user(
    ctx: Context,
    *,
    actor: str,
    name: str,
    admin: bool | None = None,
    disabled: bool | None = None,
) -> User:
    """Change a user's admin flag or disabled state (None leaves it as it is)."""
    with ctx.db.write() as conn:
        user = user_store.require_user(conn, name)
        values: dict[str, bool] = {}
        if admin is not None and admin != user.is_admin:
            values["is_admin"] = admin
        if disabled is not None and disabled != user.disabled:
            values["disabled"] = disabled
        if not values:
            return user
        action = "user.update"
        if list(values) == ["disabled"]:
            action = "user.disable" if disabled else "user.enable"
        journal_store.append(conn, actor=actor, action=action, detail={"user": name, **values})
        user_store.update_user(conn, user.id, **values)
        return user_store.require_user(conn, name)


def get_user(ctx: Context, name: str) -> User:
    with ctx.db.read() as conn:
        return user_store.require_user(conn, name)


def list_users(ctx: Context) -> Sequence[User]:
    with ctx.db.read() as conn:
        return user_store.list_users(conn)


# -- groups -----------------------------------------------------------------------------


def create_group(ctx: Context, *, actor: str, name: str) -> Group:
    check_name("group", name)
    with ctx.db.write() as conn:
        journal_store.append(conn, actor=actor, action="group.create", detail={"group": name})
        return user_store.create_group(conn, name)


def delete_group(ctx: Context, *, actor: str, name: str) -> None:
    with ctx.db.write() as conn:
        group = user_store.require_group(conn, name)
        journal_store.append(conn, actor=actor, action="group.delete", detail={"group": name})
        user_store.delete_group(conn, group)


def set_membership(ctx: Context, *, actor: str, group: str, user: str, member: bool) -> bool:
    """Add (member=True) or remove a user; False when nothing changed."""
    with ctx.db.write() as conn:
        found = user_store.require_group(conn, group)
        who = user_store.require_user(conn, user)
        if (user in found.members) == member:
            return False
        journal_store.append(
            conn,
            actor=actor,
            action="group.add" if member else "group.remove",
            detail={"group": group, "user": user},
        )
        if member:
            user_store.add_member(conn, found, who)
        else:
            user_store.remove_member(conn, found, who)
        return True


def get_group(ctx: Context, name: str) -> Group:
    with ctx.db.read() as conn:
        return user_store.require_group(conn, name)


def list_groups(ctx: Context) -> Sequence[Group]:
    with ctx.db.read() as conn:
        return user_store.list_groups(conn)


# -- tokens -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedToken:
    token: Token
    secret: str  # shown once


def create_token(
    ctx: Context,
    access: AccessService,
    catalog: Catalog,
    *,
    actor: str,
    owner: str,
    name: str = "",
    repositories: Sequence[str] | None = None,
    actions: Sequence[Action] = (Action.READ,),
    expires: str | datetime | None = None,
    not_after: datetime | None = None,
) -> CreatedToken:
    """Create a token for `owner`. Its scope may not exceed what the owner holds now (and
    at every use it is narrowed further by what the owner holds then). `not_after` is the
    expiry of the token the request came with: the new token may not outlive it."""
    wanted = sorted(set(actions) or {Action.READ}, key=_ORDER.index)
    now = ctx.clock()
    if isinstance(expires, str):
        expires_at: datetime | None = tokens.parse_expiry(expires, now)
    else:
        expires_at = expires
        if expires_at is not None:
            tokens.check_expiry(expires_at, now)
    if not_after is not None:
        _within_parent_expiry(expires_at, not_after)
    label = name.strip() or f"token-{now:%Y%m%d-%H%M%S}"
    if len(label) > 200:
        raise InvalidInput("the token name is longer than 200 characters")
    with ctx.db.read() as conn:
        user = user_store.require_user(conn, owner)
    if user.disabled:
        raise InvalidInput(f"the user {owner!r} is disabled; enable them before making tokens")
    if repositories is None:
        _may_create_unscoped(user, wanted)
        scope = None
    else:
        scope = _check_scope(access, catalog, user, repositories, wanted)
    made = tokens.new_secret()
    with ctx.db.write() as conn:
        token = token_store.create(
            conn,
            user_id=user.id,
            name=label,
            shown=made.shown,
            secret_sha256=made.sha256,
            repositories=scope,
            actions=wanted,
            expires_at=expires_at,
            now=now,
        )
        journal_store.append(
            conn,
            actor=actor,
            action="token.create",
            detail={
                "token": token.id,
                "user": owner,
                "name": label,
                "repositories": scope,
                "actions": [a.value for a in wanted],
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return CreatedToken(token, made.secret)


def _within_parent_expiry(expires_at: datetime | None, not_after: datetime) -> None:
    limit = f"{not_after:%Y-%m-%d %H:%M} UTC"
    if expires_at is None:
        raise PermissionDenied(
            f"the token making this request expires at {limit}, so the new token must expire"
            " too, no later than that: pass an expiry"
        )
    if expires_at > not_after:
        raise PermissionDenied(
            f"the new token would outlive the token making this request: it must expire no"
            f" later than {limit}"
        )


def _check_scope(
    access: AccessService,
    catalog: Catalog,
    user: User,
    repositories: Sequence[str],
    actions: Sequence[Action],
) -> list[str]:
    if not repositories:
        raise InvalidInput("name at least one repository, or leave the scope to all of them")
    top = actions[-1]
    who = access.principal_of(user)
    scope: list[str] = []
    for entry in repositories:
        matched = catalog.named(entry)
        if not matched:
            raise NotFound(
                f"there is no repository {entry!r}: name it as NAME or FORMAT/NAME"
                " (e.g. main or pypi/main); `packhouse repo list` shows them"
            )
        if not any(access.can(who, r, top) for r in matched):
            raise PermissionDenied(
                f"{user.name!r} does not hold {top} on {entry!r}, so a token of theirs cannot"
                f" either; grant it first: `packhouse repo grant {entry} {user.name} {top}`"
            )
        if entry not in scope:
            scope.append(entry)
    return scope


def _may_create_unscoped(user: User, actions: Sequence[Action]) -> None:
    """Only administrators may make an admin token that covers every repository."""
    if Action.ADMIN in actions and not user.is_admin:
        raise PermissionDenied(
            f"{user.name!r} is not an administrator, so an admin token must name its"
            " repositories (--repo NAME)"
        )


def list_tokens(
    ctx: Context, owner: str | None = None, *, revoked: bool = False
) -> Sequence[Token]:
    with ctx.db.read() as conn:
        user_id = None if owner is None else user_store.require_user(conn, owner).id
        return token_store.list_tokens(conn, user_id, include_revoked=revoked)


def get_token(ctx: Context, token_id: int) -> Token:
    with ctx.db.read() as conn:
        return token_store.get(conn, token_id)


def revoke_token(ctx: Context, *, actor: str, token_id: int) -> Token:
    with ctx.db.write() as conn:
        token = token_store.get(conn, token_id)
        if not token.revoked:
            journal_store.append(
                conn,
                actor=actor,
                action="token.revoke",
                detail={"token": token.id, "user": token.user_name, "name": token.name},
            )
            token_store.revoke(conn, token.id)
        return token_store.get(conn, token_id)
