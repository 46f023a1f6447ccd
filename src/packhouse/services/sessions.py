"""Web UI sign-in sessions, kept server-side.

Why rows in the database rather than signed cookies: signing out (or an administrator
disabling the user, or a password change) ends a session at once, everywhere, and several
server processes on several machines share sessions through the database they already
share, with no secret to distribute. The cookie carries a random secret; only its sha256 is
stored, so a copy of the database does not hold live sessions. Each session has its own
random form token (CSRF), compared in constant time on every form post.

A session is a password login: it acts with everything its user holds. It is read only by
the web UI's routes; the upload endpoints and the management API authenticate from the
Authorization header alone, so a cookie the browser sends on its own never reaches them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from packhouse.db import session_store
from packhouse.db.session_store import Session
from packhouse.services.access import AccessService, Principal
from packhouse.services.context import Context

LIFETIME = timedelta(days=7)  # a session ends this long after sign-in, used or not
IDLE = timedelta(hours=12)  # or when it was not used for this long
SEEN_EVERY = timedelta(minutes=5)  # its last use is written at most this often


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    session: Session
    secret: str = ""  # the cookie's value: set only when the session is made


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


class SessionService:
    def __init__(self, ctx: Context, access: AccessService) -> None:
        self._ctx = ctx
        self._access = access

    def sign_in(self, username: str, password: str, client: str | None) -> SignedIn:
        """A new session for a correct user name and password (slow: argon2; the failed
        login limit applies). Raises AuthenticationRequired or RateLimited."""
        who = self._access.login(username, password, client)
        assert who.user_id is not None
        secret = secrets.token_urlsafe(32)
        now = self._ctx.clock()
        session = Session(
            _hash(secret), who.user_id, secrets.token_urlsafe(32), now, now, now + LIFETIME
        )
        with self._ctx.db.write() as conn:
            session_store.remove_expired(conn, now, now - IDLE)
            session_store.create(conn, session)
        return SignedIn(who, session, secret)

    def resolve(self, secret: str | None) -> SignedIn | None:
        """The session a cookie names, if it is still good: not expired, not idle too
        long, its user enabled and their password unchanged since the sign-in."""
        if not secret or len(secret) > 100:
            return None
        with self._ctx.db.read() as conn:
            session = session_store.get(conn, _hash(secret))
        if session is None:
            return None
        now = self._ctx.clock()
        if session.expires_at <= now or session.seen_at <= now - IDLE:
            return None
        user = self._access.snapshot().users_by_id.get(session.user_id)
        if user is None or user.disabled or not user.password_hash:
            return None
        changed = user.password_changed_at
        if changed is not None and _aware(changed) > session.created_at:
            return None
        if now - session.seen_at >= SEEN_EVERY:
            with self._ctx.db.write() as conn:
                session_store.touch(conn, session.id_sha256, now)
        return SignedIn(self._access.principal_of(user), session)

    def sign_out(self, secret: str | None) -> None:
        if not secret:
            return
        with self._ctx.db.write() as conn:
            session_store.remove(conn, _hash(secret))


def csrf_ok(expected: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(expected.encode(), (sent or "").encode())


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
