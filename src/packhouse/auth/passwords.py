"""Password hashing with argon2id (OWASP minimums: m=19 MiB, t=2, p=1), and a verifier
that bounds how many verifications run at once."""

from __future__ import annotations

import os
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from packhouse.auth.tokens import PREFIXES as TOKEN_PREFIXES
from packhouse.errors import InvalidInput, RateLimited

MAX_PASSWORD_LENGTH = 4096
# how long a login waits for a free verification slot before it is asked to come back
SLOT_WAIT_SECONDS = 10.0

# configuration only (no state): every hash and verification uses these parameters
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def check_password_text(password: str) -> None:
    if not password:
        raise InvalidInput("the password is empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")
    if password.startswith(TOKEN_PREFIXES):
        raise InvalidInput(
            "a password may not start with 'ph-' or 'ph_': those prefixes mark API tokens;"
            " choose another"
        )


def hash_password(password: str) -> str:
    check_password_text(password)
    return HASHER.hash(password)


def generate_password() -> str:
    while (password := secrets.token_urlsafe(18)).startswith(TOKEN_PREFIXES):
        pass
    return password


class PasswordVerifier:
    """Verifies passwords, at most `concurrency` at a time (default: one per CPU).

    Each argon2 verification holds 19 MiB and a CPU for tens of milliseconds, so a burst of
    logins queues here rather than in memory. An absent hash (unknown user) is verified
    against a dummy hash, made on first use, so both paths cost the same.
    """

    def __init__(self, concurrency: int | None = None) -> None:
        self.concurrency = concurrency or os.cpu_count() or 1
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._dummy_lock = threading.Lock()
        self.dummy_hash: str | None = None

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches; False for an absent hash, after the same work.

        Raises RateLimited when no slot frees up within SLOT_WAIT_SECONDS."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        if not self._slots.acquire(timeout=SLOT_WAIT_SECONDS):
            raise RateLimited("the server is busy checking other logins; try again shortly", 2)
        try:
            return self._verify_unlimited(password_hash, password)
        finally:
            self._slots.release()

    def _verify_unlimited(self, password_hash: str | None, password: str) -> bool:
        target = password_hash or self._dummy()
        try:
            ok = HASHER.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None

    def _dummy(self) -> str:
        with self._dummy_lock:
            if self.dummy_hash is None:
                self.dummy_hash = HASHER.hash(secrets.token_urlsafe(16))
            return self.dummy_hash
