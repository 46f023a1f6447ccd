"""Leases on upstream fetches (table `upstream_leases`): the process holding a key's lease
is the one fetching that document or file from the upstream (services/upstream_cache.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from packhouse.db.schema import upstream_leases
from packhouse.units import aware


def take(conn: Connection, key: str, holder: str, now: datetime, until: datetime) -> bool:
    """Take the lease of `key` unless someone holds it unexpired; True when taken. Call it in
    a write transaction: writers are serialised, so the check and the insert are one step."""
    row = conn.execute(
        select(upstream_leases.c.expires_at).where(upstream_leases.c.key == key)
    ).first()
    if row is not None:
        if aware(row.expires_at) > now:
            return False
        conn.execute(delete(upstream_leases).where(upstream_leases.c.key == key))
    conn.execute(insert(upstream_leases).values(key=key, holder=holder, expires_at=until))
    return True


def give_up(conn: Connection, key: str, holder: str) -> None:
    conn.execute(
        delete(upstream_leases)
        .where(upstream_leases.c.key == key)
        .where(upstream_leases.c.holder == holder)
    )
