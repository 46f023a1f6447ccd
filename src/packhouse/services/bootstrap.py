"""The first start on an empty data directory: an admin user and the `main` repositories."""

from __future__ import annotations

from dataclasses import dataclass

from packhouse.auth.passwords import generate_password, hash_password
from packhouse.db import journal_store, user_store
from packhouse.services.context import Context
from packhouse.services.repos import create_repository
from packhouse.types import Format


@dataclass(frozen=True)
class FirstStart:
    admin: str
    generated_password: str | None  # shown once when we made it up; None when it was given


def first_start(ctx: Context, admin: str = "admin") -> FirstStart | None:
    """Create the admin and the private `main` repositories, once. None if already done."""
    with ctx.db.read() as conn:
        if user_store.user_count(conn) > 0:
            return None
    given = ctx.settings.admin_password
    password = given.get_secret_value() if given else generate_password()
    with ctx.db.write() as conn:
        if user_store.user_count(conn) > 0:
            return None
        journal_store.append(conn, actor="packhouse", action="user.create", detail={"user": admin})
        user_store.create_user(conn, admin, hash_password(password), is_admin=True)
    for fmt in (Format.PYPI, Format.CONDA):
        create_repository(ctx, actor="packhouse", name="main", fmt=fmt)
    return FirstStart(admin, None if given else password)
