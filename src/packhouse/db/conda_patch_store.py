"""Repodata patch instructions of a conda channel, one document per subdir."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from packhouse.db.schema import conda_patches


@dataclass(frozen=True)
class StoredPatch:
    subdir: str
    instructions: dict[str, Any]
    serial: int


def get(conn: Connection, repo_id: int, subdir: str) -> StoredPatch | None:
    row = conn.execute(
        select(conda_patches).where(
            conda_patches.c.repository_id == repo_id, conda_patches.c.subdir == subdir
        )
    ).first()
    return None if row is None else StoredPatch(row.subdir, row.instructions, row.serial)


def put(
    conn: Connection, repo_id: int, subdir: str, instructions: dict[str, Any], serial: int
) -> None:
    """Replace the subdir's instructions (an empty document removes them)."""
    conn.execute(
        delete(conda_patches).where(
            conda_patches.c.repository_id == repo_id, conda_patches.c.subdir == subdir
        )
    )
    conn.execute(
        insert(conda_patches).values(
            repository_id=repo_id, subdir=subdir, instructions=instructions, serial=serial
        )
    )


def subdirs(conn: Connection, repo_id: int) -> list[str]:
    rows = conn.execute(
        select(conda_patches.c.subdir).where(conda_patches.c.repository_id == repo_id)
    )
    return sorted(r.subdir for r in rows)
