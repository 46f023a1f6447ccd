"""Claims on blobs (table `blob_claims`): "use" while a blob is written for a row not yet
committed, "delete" while it is being deleted. services/blob_claims.py holds the rules."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, delete, insert, select

from packhouse.db.schema import blob_claims

Kind = Literal["use", "delete"]


def add(conn: Connection, shas: Iterable[str], kind: Kind, expires_at: datetime) -> list[int]:
    ids = []
    for sha in shas:
        result = conn.execute(
            insert(blob_claims).values(sha256=sha, kind=kind, expires_at=expires_at)
        )
        key = result.inserted_primary_key
        assert key is not None
        ids.append(int(key[0]))
    return ids


def held(conn: Connection, shas: Iterable[str], kind: Kind, now: datetime) -> set[str]:
    """Which of `shas` an unexpired claim of `kind` holds."""
    wanted = sorted(set(shas))
    if not wanted:
        return set()
    rows = conn.execute(
        select(blob_claims.c.sha256)
        .where(blob_claims.c.sha256.in_(wanted))
        .where(blob_claims.c.kind == kind)
        .where(blob_claims.c.expires_at > now)
    )
    return {row.sha256 for row in rows}


def remove(conn: Connection, ids: Iterable[int]) -> None:
    wanted = list(ids)
    if wanted:
        conn.execute(delete(blob_claims).where(blob_claims.c.id.in_(wanted)))


def remove_expired(conn: Connection, now: datetime) -> None:
    conn.execute(delete(blob_claims).where(blob_claims.c.expires_at <= now))
