"""Password hashing with argon2id (OWASP minimums: m=19 MiB, t=2, p=1)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from packhouse.errors import InvalidInput

MAX_PASSWORD_LENGTH = 4096

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def check_password_text(password: str) -> None:
    if not password:
        raise InvalidInput("the password is empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")
    if password.startswith("ph_"):
        raise InvalidInput(
            "a password may not start with 'ph_': that prefix marks API tokens; choose another"
        )


def hash_password(password: str) -> str:
    check_password_text(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-ish time: an absent hash still pays for one argon2 verification."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    target = password_hash or _dummy_hash()
    try:
        ok = _hasher.verify(target, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def generate_password() -> str:
    while (password := secrets.token_urlsafe(18)).startswith("ph_"):
        pass
    return password


# Verified against when the user does not exist, so both paths cost the same (made lazily,
# so nothing is computed at import time).
_dummy: list[str] = []


def _dummy_hash() -> str:
    if not _dummy:
        _dummy.append(_hasher.hash(secrets.token_urlsafe(16)))
    return _dummy[0]
