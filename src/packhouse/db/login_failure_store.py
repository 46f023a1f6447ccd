"""Failed password logins (table `login_failures`), shared by every process of a server:
one row per key (`user:NAME`, `addr:IP`) and failure, at wall-clock seconds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, delete, func, insert, select

from packhouse.db.schema import login_failures


def recent(conn: Connection, keys: Sequence[str], since: float) -> dict[str, list[float]]:
    """The failure times of each key after `since`, oldest first."""
    found: dict[str, list[float]] = {}
    rows = conn.execute(
        select(login_failures.c.key, login_failures.c.at)
        .where(login_failures.c.key.in_(list(keys)))
        .where(login_failures.c.at > since)
        .order_by(login_failures.c.at)
    )
    for row in rows:
        found.setdefault(row.key, []).append(row.at)
    return found


def add(conn: Connection, keys: Iterable[str], at: float) -> None:
    for key in keys:
        conn.execute(insert(login_failures).values(key=key, at=at))


def forgive(conn: Connection, keys: Iterable[str]) -> None:
    """Take back one failure of each key (the newest)."""
    for key in keys:
        newest = (
            select(func.max(login_failures.c.id))
            .where(login_failures.c.key == key)
            .scalar_subquery()
        )
        conn.execute(delete(login_failures).where(login_failures.c.id == newest))


def prune(conn: Connection, before: float) -> None:
    conn.execute(delete(login_failures).where(login_failures.c.at <= before))
