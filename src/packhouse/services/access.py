"""Who is calling (authentication) and what they may do (authorisation).

Both run on every request, so what they read (users, groups, grants, live tokens) is kept
in a snapshot rebuilt only when the journal serial moves; every change to those writes a
journal entry. A successful password verification (argon2, slow on purpose) is remembered
for a short time, keyed by an HMAC of the credentials (with a random key made for each
service) and tied to the user's current password hash, so a password change forgets it at
once. At most one verification per CPU runs at a time, and a login attempt counts against
the failed-login limit before it is verified (it is forgiven when it succeeds).

Credentials, as clients send them:
- Basic user + password; Basic `__token__` (or any user name) + a token (`ph-...`, or the
  older `ph_...`);
- `Authorization: Bearer ph-...`;
- a token in the URL, `/t/ph-.../conda/...` (the web layer strips it and passes it here).

A token minted by trusted publishing (services/oidc.py) has the same form and is found the
same way; its principal is no user but a publisher, allowed to upload to its one repository.
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from packhouse.auth import tokens
from packhouse.auth.passwords import PasswordVerifier
from packhouse.db import oidc_store, token_store, user_store
from packhouse.db.oidc_store import MintedToken
from packhouse.db.repository_store import Repository
from packhouse.db.token_store import Token
from packhouse.errors import AuthenticationRequired, PermissionDenied, RateLimited
from packhouse.services.context import Context
from packhouse.services.login_limits import SharedFailureLimiter
from packhouse.types import Action

log = logging.getLogger("packhouse.access")

ANONYMOUS_NAME = ":anonymous:"
AUTHENTICATED = ":authenticated:"
VERIFIED_TTL_SECONDS = 300.0
# last_used_at is written at most this often per token, to keep reads from becoming writes
LAST_USED_INTERVAL_SECONDS = 60.0
MAX_REMEMBERED = 10_000
# minted tokens this long past their expiry still answer "expired", not "unknown"
MINTED_EXPIRED_KEPT = timedelta(hours=1)


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
    token_expires_at: datetime | None = None
    # A trusted publisher (by a minted token): no user, upload to its one repository only.
    publisher_id: int | None = None

    @property
    def anonymous(self) -> bool:
        return self.user_id is None and self.publisher_id is None

    @property
    def full_admin(self) -> bool:
        """An administrator not narrowed by a token (or by an unscoped admin token)."""
        return self.is_admin and (
            self.token_id is None
            or (
                self.token_repositories is None
                and self.token_actions is not None
                and Action.ADMIN in self.token_actions
            )
        )


ANONYMOUS = Principal(ANONYMOUS_NAME)


@dataclass
class _Snapshot:
    serial: int  # the structure generation it was read at (db/journal_store.py)
    users: Mapping[str, user_store.User]
    groups: Mapping[int, frozenset[str]]
    grants: Mapping[int, tuple[user_store.Grant, ...]] = field(default_factory=dict)
    tokens: Mapping[str, Token] = field(default_factory=dict)  # by secret sha256
    users_by_id: Mapping[int, user_store.User] = field(default_factory=dict)
    minted: Mapping[str, MintedToken] = field(default_factory=dict)  # by secret sha256


class AccessService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()
        # keys the memory of verified credentials: made per service, never at import time
        self._key = secrets.token_bytes(32)
        self.passwords = PasswordVerifier()
        self._verified: dict[bytes, tuple[str, float]] = {}
        self._touched: dict[int, float] = {}  # token id -> when its use was last recorded
        # hash of the credentials a request sent -> (principal, serial, valid until)
        self._resolved: dict[bytes, tuple[Principal, int, float]] = {}
        self._verifying: dict[bytes, threading.Lock] = {}  # credentials being verified now
        self._guard = threading.Lock()
        self.limiter = SharedFailureLimiter(
            ctx.db, ctx.settings.login_failure_limit, float(ctx.settings.login_failure_window)
        )

    # -- snapshot -------------------------------------------------------------------------

    def snapshot(self, serial: int | None = None) -> _Snapshot:
        """Users, groups, grants and tokens as of the newest structure generation: uploads
        and other changes to files only do not make it read again."""
        serial = self._ctx.db.watcher.structure(serial)
        snap = self._snapshot
        if snap is not None and snap.serial == serial:
            return snap
        with self._lock, self._ctx.db.read() as conn:
            users = {u.name: u for u in user_store.list_users(conn)}
            groups = user_store.all_memberships(conn)
            grants: dict[int, list[user_store.Grant]] = {}
            for g in user_store.all_grants(conn):
                grants.setdefault(g.repository_id, []).append(g)
            live = {t.secret_sha256: t for t in token_store.live(conn)}
            since = self._ctx.clock() - MINTED_EXPIRED_KEPT
            minted = {t.secret_sha256: t for t in oidc_store.live_tokens(conn, since)}
            snap = _Snapshot(
                serial,
                users,
                groups,
                {k: tuple(v) for k, v in grants.items()},
                live,
                {u.id: u for u in users.values()},
                minted,
            )
            self._snapshot = snap
            return snap

    def principal_of(self, user: user_store.User) -> Principal:
        """The principal a user is when they log in with their password."""
        return self._user_principal(self.snapshot(), user)

    @staticmethod
    def _user_principal(snap: _Snapshot, user: user_store.User) -> Principal:
        return Principal(user.name, user.id, user.is_admin, snap.groups.get(user.id, frozenset()))

    # -- authentication -------------------------------------------------------------------

    def authenticate(
        self, authorization: str | None, url_token: str | None = None, client: str | None = None
    ) -> Principal:
        """The principal the request's credentials name; ANONYMOUS when there are none.

        Raises AuthenticationRequired for credentials that are present but not valid, and
        RateLimited after too many failed password logins. May be slow (argon2, a database
        write): call it off the event loop. `authenticate_cached` is the fast path.
        """
        if url_token is not None:
            return self.token_login(url_token)
        if not authorization:
            return ANONYMOUS
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            username, password = _decode_basic(value.strip())
            if username == "__token__" or tokens.is_token_text(password):
                return self.token_login(password, authorization)
            return self.login(username, password, client, authorization)
        if scheme.lower() == "bearer":
            return self.token_login(value.strip(), authorization)
        raise AuthenticationRequired(
            f"the {scheme!r} authorization scheme is not supported; use Basic or Bearer"
        )

    def authenticate_cached(
        self, authorization: str | None, url_token: str | None = None, serial: int | None = None
    ) -> Principal | None:
        """The principal when it is known without slow work (no argon2, no write), else None.

        Credentials resolved before are found by a hash of what the request sent; the entry
        holds while the structure generation is unchanged (a revocation, a disabled user, a
        new password or grant all move it; uploads do not) and until the token expires, the
        verification is to be repeated, or the token's last use is due to be recorded. A
        caller that has just read the newest serial (`db.watcher.current()`) passes it as
        `serial`, which saves reading it again.
        """
        if url_token is None and not authorization:
            return ANONYMOUS
        sent = f"t:{url_token}" if url_token is not None else authorization or ""
        found = self._resolved.get(self._sent_key(sent))
        if found is not None:
            who, at_serial, valid_until = found
            if self._ctx.db.watcher.structure(serial) == at_serial and time.time() < valid_until:
                return who
        return self._resolve_quick(authorization, url_token)

    def _resolve_quick(self, authorization: str | None, url_token: str | None) -> Principal | None:
        if url_token is not None:
            return self._token_fast(url_token, f"t:{url_token}")
        assert authorization
        scheme = authorization[:7].lower()
        if scheme.startswith("basic "):
            try:
                username, password = _decode_basic(authorization[6:].strip())
            except AuthenticationRequired:
                return None
            if username == "__token__" or tokens.is_token_text(password):
                return self._token_fast(password, authorization)
            return self._remembered(username, password, authorization)
        if scheme == "bearer ":
            return self._token_fast(authorization[7:].strip(), authorization)
        return None

    def _keep(self, sent: str | None, who: Principal, serial: int, valid_until: float) -> None:
        if sent is None:
            return
        if len(self._resolved) > MAX_REMEMBERED:
            self._resolved.clear()
        self._resolved[self._sent_key(sent)] = (who, serial, valid_until)

    def _remembered(
        self, username: str, password: str, sent: str | None = None
    ) -> Principal | None:
        snap = self.snapshot()
        user = snap.users.get(username)
        cached = self._verified.get(self._credential_key(username, password))
        if (
            user is None
            or user.disabled
            or cached is None
            or cached[0] != user.password_hash
            or cached[1] <= time.time()
        ):
            return None
        who = self._user_principal(snap, user)
        self._keep(sent, who, snap.serial, cached[1])
        return who

    def login(
        self, username: str, password: str, client: str | None = None, sent: str | None = None
    ) -> Principal:
        remembered = self._remembered(username, password, sent)
        if remembered is not None:
            return remembered
        # The same credentials sent by many requests at once (uv's parallel downloads) are
        # verified once: the others wait, then find them remembered, and count as nothing.
        credential = self._credential_key(username, password)
        with self._guard:
            lock = self._verifying.setdefault(credential, threading.Lock())
        try:
            with lock:
                remembered = self._remembered(username, password, sent)
                if remembered is not None:
                    return remembered
                return self._verify(username, password, client, sent)
        finally:
            with self._guard:
                if self._verifying.get(credential) is lock and not lock.locked():
                    del self._verifying[credential]

    def _verify(
        self, username: str, password: str, client: str | None, sent: str | None
    ) -> Principal:
        keys = [f"user:{username}"] + ([f"addr:{client}"] if client else [])
        # counted before verifying, so a concurrent burst cannot all pass the check
        wait = self.limiter.attempt(keys)
        if wait:
            raise RateLimited(
                f"too many failed logins for this user or from this address; try again in"
                f" {wait} seconds",
                wait,
            )
        snap = self.snapshot()
        user = snap.users.get(username)
        try:
            # one argon2 verification even when the user is unknown
            ok = self.passwords.verify(user.password_hash if user else None, password)
        except RateLimited:
            self.limiter.forgive(keys)  # not verified: no attempt was made
            raise
        if not ok or user is None or not user.password_hash:
            raise AuthenticationRequired("the user name or password is wrong")
        self.limiter.forgive(keys)
        if user.disabled:
            raise AuthenticationRequired(
                f"the user {username!r} is disabled; ask an administrator to enable it"
            )
        if len(self._verified) > MAX_REMEMBERED:
            self._verified.clear()
        valid_until = time.time() + VERIFIED_TTL_SECONDS
        self._verified[self._credential_key(username, password)] = (user.password_hash, valid_until)
        who = self._user_principal(snap, user)
        self._keep(sent, who, snap.serial, valid_until)
        return who

    def token_login(self, secret: str, sent: str | None = None) -> Principal:
        """The principal a token stands for; records its use (at most once a minute)."""
        who, token, serial, valid_until = self._resolve_token(secret)
        if token is not None and self._touch_due(token):
            self._touch(token)
            valid_until = self._token_valid_until(token)
        self._keep(sent or f"t:{secret}", who, serial, valid_until)
        return who

    def _token_fast(self, secret: str, sent: str) -> Principal | None:
        try:
            who, token, serial, valid_until = self._resolve_token(secret)
        except AuthenticationRequired:
            return None  # the slow path raises the same error
        if token is not None and self._touch_due(token):
            return None
        self._keep(sent, who, serial, valid_until)
        return who

    def _resolve_token(self, secret: str) -> tuple[Principal, Token | None, int, float]:
        """The token's principal, its row (None for a minted one), the serial it was read
        at, and until when it may be taken from memory."""
        if not tokens.well_formed(secret):
            raise AuthenticationRequired(
                "the token is malformed: a Packhouse token is 'ph-' followed by 43 letters and"
                " digits (older ones: 'ph_' and 43 characters); copy it again, or create a new"
                " one with `packhouse token create`"
            )
        snap = self.snapshot()
        digest = tokens.hash_secret(secret)
        minted = snap.minted.get(digest)
        if minted is not None and tokens.same_hash(minted.secret_sha256, secret):
            return self._publisher_principal(minted), None, snap.serial, self._until(minted)
        token = snap.tokens.get(digest)
        if token is None or not tokens.same_hash(token.secret_sha256, secret):
            raise AuthenticationRequired(
                "the token is not valid: it is unknown or was revoked; create a new one"
            )
        if token.expired(self._ctx.clock()):
            assert token.expires_at is not None
            raise AuthenticationRequired(
                f"the token {token.name!r} expired at {token.expires_at:%Y-%m-%d %H:%M} UTC;"
                " create a new one"
            )
        user = snap.users_by_id.get(token.user_id)
        if user is None or user.disabled:
            raise AuthenticationRequired(
                f"the owner of the token {token.name!r} is disabled, so the token is too"
            )
        who = Principal(
            user.name,
            user.id,
            user.is_admin,
            snap.groups.get(user.id, frozenset()),
            token_id=token.id,
            token_repositories=None
            if token.repositories is None
            else frozenset(token.repositories),
            token_actions=token.actions,
            token_expires_at=token.expires_at,
        )
        return who, token, snap.serial, self._token_valid_until(token)

    def _publisher_principal(self, minted: MintedToken) -> Principal:
        if minted.expires_at <= self._ctx.clock():
            raise AuthenticationRequired(
                f"the trusted-publishing token expired at {minted.expires_at:%H:%M:%S} UTC;"
                " exchange a new identity token for another"
            )
        sub = minted.claims.get("sub", f"publisher {minted.publisher_id}")
        return Principal(
            f"oidc:{minted.issuer_name}:{sub}"[:200],
            token_id=minted.id,
            token_repositories=frozenset({minted.repository}),
            token_actions=frozenset({Action.UPLOAD}),
            token_expires_at=minted.expires_at,
            publisher_id=minted.publisher_id,
        )

    def _until(self, minted: MintedToken) -> float:
        return time.time() + (minted.expires_at - self._ctx.clock()).total_seconds()

    def _token_valid_until(self, token: Token) -> float:
        """Until when a resolved token may be taken from memory (wall-clock seconds)."""
        until = self._touched.get(token.id, 0.0) + LAST_USED_INTERVAL_SECONDS
        if token.expires_at is not None:
            # measured against the service clock, which tests may move
            left = (token.expires_at - self._ctx.clock()).total_seconds()
            until = min(until, time.time() + left)
        return until

    def _touch_due(self, token: Token) -> bool:
        last = self._touched.get(token.id)
        return last is None or time.time() - last >= LAST_USED_INTERVAL_SECONDS

    def _touch(self, token: Token) -> None:
        self._touched[token.id] = time.time()
        try:
            with self._ctx.db.write() as conn:
                token_store.touch(conn, token.id, self._ctx.clock())
        except Exception:  # recording the use must never fail the request
            log.warning("could not record the use of token %d", token.id, exc_info=True)

    # -- authorisation --------------------------------------------------------------------

    def can(self, principal: Principal, repo: Repository, action: Action) -> bool:
        if principal.token_repositories is not None and not (
            repo.name in principal.token_repositories
            or f"{repo.format}/{repo.name}" in principal.token_repositories
        ):
            return False
        if principal.token_actions is not None and not any(
            a.implies(action) for a in principal.token_actions
        ):
            return False
        if principal.is_admin or principal.publisher_id is not None:
            return True
        for g in self.snapshot().grants.get(repo.id, ()):
            if not Action(g.action).implies(action):
                continue
            if g.principal_kind == "special":
                if g.principal == ANONYMOUS_NAME:
                    return True
                if g.principal == AUTHENTICATED and not principal.anonymous:
                    return True
            elif g.principal_kind == "user":
                if g.principal == principal.name and not principal.anonymous:
                    return True
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
        # Say which command gives the right: a token whose owner holds it only needs a
        # token that reaches it; otherwise the owner (or the user) needs the grant.
        qualified = f"{repo.format}/{repo.name}"
        if principal.publisher_id is not None:
            raise PermissionDenied(
                f"this trusted-publishing token may not {action} in the {repo.format}"
                f" repository {repo.name!r}: it uploads only where its publisher is registered"
                f" (`packhouse oidc publisher add --repo {qualified} ...` registers one here)"
            )
        if principal.token_id is not None:
            owner = replace(principal, token_id=None, token_repositories=None, token_actions=None)
            if self.can(owner, repo, action):
                raise PermissionDenied(
                    f"this token may not {action} in the {repo.format} repository"
                    f" {repo.name!r}: its scope leaves that out; make one that reaches it:"
                    f" `packhouse token create --user {principal.name} --repo {qualified}"
                    f" --scope {action}`"
                )
        what = "this token" if principal.token_id is not None else repr(principal.name)
        raise PermissionDenied(
            f"{what} may not {action} in the {repo.format} repository {repo.name!r}; an"
            f" administrator grants it with"
            f" `packhouse repo grant {qualified} {principal.name} {action}`"
        )

    def require_admin(self, principal: Principal) -> None:
        if principal.full_admin:
            return
        if principal.anonymous:
            raise AuthenticationRequired("this needs an administrator's credentials")
        if principal.is_admin:
            raise PermissionDenied(
                "this needs an administrator's password or an admin token scoped to every"
                " repository"
            )
        raise PermissionDenied(
            f"{principal.name!r} is not an administrator (`packhouse user admin"
            f" {principal.name}` makes them one)"
        )

    def require_user(self, principal: Principal) -> None:
        if principal.anonymous:
            raise AuthenticationRequired("send credentials: a user and password, or a token")
        if principal.publisher_id is not None:
            raise PermissionDenied("a trusted-publishing token may only upload")

    def _sent_key(self, sent: str) -> bytes:
        return hmac.digest(self._key, sent.encode("utf-8", "surrogateescape"), "sha256")

    def _credential_key(self, username: str, password: str) -> bytes:
        text = f"{username}\0{password}".encode("utf-8", "surrogateescape")
        return hmac.digest(self._key, text, "sha256")


def may_manage_token(who: Principal, token: Token) -> bool:
    """Whether `who` may see or revoke `token`.

    An administrator not narrowed by a token: every token. A password login: its user's
    tokens. A call made with a token: that token itself, and other tokens of its user only
    when it holds admin on every repository the other token covers (so an unscoped token is
    managed only by an unscoped admin token or the password).
    """
    if who.full_admin:
        return True
    if who.anonymous or token.user_id != who.user_id:
        return False
    if who.token_id is None or who.token_id == token.id:
        return True
    if who.token_actions is None or Action.ADMIN not in who.token_actions:
        return False
    if who.token_repositories is None:
        return True
    return token.repositories is not None and covers(who.token_repositories, token.repositories)


def covers(held: frozenset[str], wanted: Iterable[str]) -> bool:
    """Whether the repository entries `held` (NAME or FORMAT/NAME) reach every one of
    `wanted`: NAME reaches FORMAT/NAME, not the other way round."""
    return all(e in held or e.partition("/")[2] in held for e in wanted)


def _decode_basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except ValueError:  # not ASCII, not base64 (binascii.Error) or not UTF-8
        raise AuthenticationRequired(
            "the Basic credentials are not valid base64 of UTF-8 text; send user:password"
            " encoded in base64"
        ) from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise AuthenticationRequired("the Basic credentials have no ':' between user and password")
    return username, password
