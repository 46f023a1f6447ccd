"""Web UI sessions: rows keyed by the sha256 of the cookie's secret (never the secret)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, insert, select, update

from packhouse.db.schema import ui_sessions


@dataclass(frozen=True)
class Session:
    id_sha256: str
    user_id: int
    csrf: str
    created_at: datetime
    seen_at: datetime
    expires_at: datetime


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create(conn: Connection, session: Session) -> None:
    conn.execute(
        insert(ui_sessions).values(
            id_sha256=session.id_sha256,
            user_id=session.user_id,
            csrf=session.csrf,
            created_at=session.created_at,
            seen_at=session.seen_at,
            expires_at=session.expires_at,
        )
    )


def get(conn: Connection, id_sha256: str) -> Session | None:
    row = conn.execute(select(ui_sessions).where(ui_sessions.c.id_sha256 == id_sha256)).first()
    if row is None:
        return None
    return Session(
        row.id_sha256,
        row.user_id,
        row.csrf,
        _utc(row.created_at),
        _utc(row.seen_at),
        _utc(row.expires_at),
    )


def touch(conn: Connection, id_sha256: str, when: datetime) -> None:
    conn.execute(
        update(ui_sessions).where(ui_sessions.c.id_sha256 == id_sha256).values(seen_at=when)
    )


def remove(conn: Connection, id_sha256: str) -> None:
    conn.execute(delete(ui_sessions).where(ui_sessions.c.id_sha256 == id_sha256))


def remove_expired(conn: Connection, now: datetime, idle_before: datetime) -> int:
    result = conn.execute(
        delete(ui_sessions).where(
            (ui_sessions.c.expires_at <= now) | (ui_sessions.c.seen_at <= idle_before)
        )
    )
    return int(result.rowcount or 0)
