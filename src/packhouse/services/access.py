"""Who is calling (authentication) and what they may do (authorisation).

Both run on every request, so what they read is kept in a snapshot rebuilt only when the
journal serial moves, and a successful password verification (argon2, slow on purpose) is
remembered for a short time, keyed by a hash of the credentials and tied to the user's
current password hash, so a password change forgets it at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from packhouse.auth.passwords import verify_password
from packhouse.db import user_store
from packhouse.db.repository_store import Repository
from packhouse.errors import AuthenticationRequired, PermissionDenied
from packhouse.services.context import Context
from packhouse.types import Action

ANONYMOUS_NAME = ":anonymous:"
AUTHENTICATED = ":authenticated:"
VERIFIED_TTL_SECONDS = 300.0


@dataclass(frozen=True)
class Principal:
    name: str
    user_id: int | None = None
    is_admin: bool = False
    groups: frozenset[str] = frozenset()
    # A token narrows what its user may do: None means "no narrowing".
    token_id: int | None = None
    token_repositories: frozenset[str] | None = None
    token_actions: frozenset[Action] | None = None

    @property
    def anonymous(self) -> bool:
        return self.user_id is None


ANONYMOUS = Principal(ANONYMOUS_NAME)


@dataclass
class _Snapshot:
    serial: int
    users: Mapping[str, user_store.User]
    groups: Mapping[int, frozenset[str]]
    grants: Mapping[int, tuple[user_store.Grant, ...]] = field(default_factory=dict)


class AccessService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()
        self._verified: dict[bytes, tuple[str, float]] = {}

    # -- snapshot -------------------------------------------------------------------------

    def snapshot(self) -> _Snapshot:
        serial = self._ctx.db.watcher.current()
        snap = self._snapshot
        if snap is not None and snap.serial == serial:
            return snap
        with self._lock, self._ctx.db.read() as conn:
            users = {u.name: u for u in user_store.list_users(conn)}
            groups = {u.id: user_store.group_names_of(conn, u.id) for u in users.values()}
            grants: dict[int, list[user_store.Grant]] = {}
            for g in user_store.all_grants(conn):
                grants.setdefault(g.repository_id, []).append(g)
            snap = _Snapshot(serial, users, groups, {k: tuple(v) for k, v in grants.items()})
            self._snapshot = snap
            return snap

    # -- authentication -------------------------------------------------------------------

    def authenticate(self, authorization: str | None, url_token: str | None = None) -> Principal:
        """The principal the request's credentials name; ANONYMOUS when there are none.

        Raises AuthenticationRequired for credentials that are present but not valid.
        May be slow (argon2): call it off the event loop. `authenticate_cached` is the
        fast path.
        """
        if url_token is not None:
            return self.token_login(url_token)
        if not authorization:
            return ANONYMOUS
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            username, password = _decode_basic(value.strip())
            return self.login(username, password)
        if scheme.lower() == "bearer":
            return self.token_login(value.strip())
        raise AuthenticationRequired(
            f"the {scheme!r} authorization scheme is not supported; use Basic or Bearer"
        )

    def authenticate_cached(
        self, authorization: str | None, url_token: str | None = None
    ) -> Principal | None:
        """The principal when it can be known without slow work, else None."""
        if url_token is None and not authorization:
            return ANONYMOUS
        if url_token is None and authorization and authorization[:6].lower() == "basic ":
            try:
                username, password = _decode_basic(authorization[6:].strip())
            except AuthenticationRequired:
                return None
            return self._remembered(username, password)
        return None

    def _remembered(self, username: str, password: str) -> Principal | None:
        snap = self.snapshot()
        user = snap.users.get(username)
        cached = self._verified.get(_credential_key(username, password))
        if (
            user is None
            or user.disabled
            or cached is None
            or cached[0] != user.password_hash
            or cached[1] <= time.monotonic()
        ):
            return None
        return Principal(user.name, user.id, user.is_admin, snap.groups.get(user.id, frozenset()))

    def login(self, username: str, password: str) -> Principal:
        remembered = self._remembered(username, password)
        if remembered is not None:
            return remembered
        snap = self.snapshot()
        user = snap.users.get(username)
        ok = verify_password(user.password_hash if user else None, password)
        if not ok or user is None or not user.password_hash:
            raise AuthenticationRequired("the user name or password is wrong")
        if user.disabled:
            raise AuthenticationRequired(f"the user {username!r} is disabled")
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[_credential_key(username, password)] = (
            user.password_hash,
            time.monotonic() + VERIFIED_TTL_SECONDS,
        )
        return Principal(user.name, user.id, user.is_admin, snap.groups.get(user.id, frozenset()))

    def token_login(self, secret: str) -> Principal:
        raise AuthenticationRequired("API tokens are not accepted by this server yet")

    # -- authorisation --------------------------------------------------------------------

    def can(self, principal: Principal, repo: Repository, action: Action) -> bool:
        if principal.token_repositories is not None and (
            repo.name not in principal.token_repositories
        ):
            return False
        if principal.token_actions is not None and not any(
            a.implies(action) for a in principal.token_actions
        ):
            return False
        if principal.is_admin:
            return True
        for g in self.snapshot().grants.get(repo.id, ()):
            if not Action(g.action).implies(action):
                continue
            if g.principal_kind == "special":
                if g.principal == ANONYMOUS_NAME:
                    return True
                if g.principal == AUTHENTICATED and not principal.anonymous:
                    return True
            elif g.principal_kind == "user" and g.principal == principal.name:
                return not principal.anonymous
            elif g.principal_kind == "group" and g.principal in principal.groups:
                return True
        return False

    def is_public(self, repo_id: int) -> bool:
        """Whether anonymous callers may read the repository."""
        return any(
            g.principal_kind == "special" and g.principal == ANONYMOUS_NAME
            for g in self.snapshot().grants.get(repo_id, ())
        )

    def check(self, principal: Principal, repo: Repository, action: Action) -> None:
        if self.can(principal, repo, action):
            return
        if principal.anonymous:
            raise AuthenticationRequired(
                f"the {repo.format} repository {repo.name!r} needs credentials to {action}"
            )
        raise PermissionDenied(
            f"{principal.name!r} may not {action} in the {repo.format} repository {repo.name!r}"
        )

    def require_admin(self, principal: Principal) -> None:
        if principal.is_admin and (
            principal.token_actions is None or Action.ADMIN in principal.token_actions
        ):
            return
        if principal.anonymous:
            raise AuthenticationRequired("this needs an administrator's credentials")
        raise PermissionDenied(f"{principal.name!r} is not an administrator")


def _credential_key(username: str, password: str) -> bytes:
    return hashlib.sha256(f"{username}\0{password}".encode()).digest()


def _decode_basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationRequired("the Basic credentials are not valid base64 UTF-8") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise AuthenticationRequired("the Basic credentials have no ':' between user and password")
    return username, password
