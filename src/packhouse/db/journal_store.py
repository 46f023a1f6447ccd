"""The journal: append a change, read the log back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from packaging.utils import canonicalize_name
from sqlalchemy import Connection, func, insert, select, update

from packhouse.db.schema import generations, journal
from packhouse.types import Serial

# Changes to files only: they move the serial but not the structure generation. Any other
# action (one added later too) moves both, so nothing that decides access is ever missed.
CONTENT_ACTIONS = frozenset({"upload", "yank", "unyank", "delete", "promote", "conda.patch"})
STRUCTURE = "structure"


@dataclass(frozen=True)
class JournalEntry:
    serial: Serial
    time: datetime
    actor: str
    action: str
    repository: str | None
    project: str | None
    filename: str | None
    detail: dict[str, Any] | None


def append(
    conn: Connection,
    *,
    actor: str,
    action: str,
    repository: str | None = None,
    project: str | None = None,
    filename: str | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Serial:
    result = conn.execute(
        insert(journal).values(
            time=now or datetime.now(UTC),
            actor=actor,
            action=action,
            repository=repository,
            project=project,
            filename=filename,
            detail=detail,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    serial = Serial(int(key[0]))
    if action not in CONTENT_ACTIONS:
        moved = conn.execute(
            update(generations).where(generations.c.name == STRUCTURE).values(serial=serial)
        )
        if not moved.rowcount:
            conn.execute(insert(generations).values(name=STRUCTURE, serial=serial))
    return serial


def structure_generation(conn: Connection) -> int:
    """The serial of the newest change that was not to files only (0: none yet)."""
    found = conn.execute(
        select(generations.c.serial).where(generations.c.name == STRUCTURE)
    ).scalar()
    return int(found or 0)


def last_serial(conn: Connection) -> Serial:
    return Serial(int(conn.execute(select(func.max(journal.c.serial))).scalar() or 0))


def entries(
    conn: Connection,
    *,
    repository: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    project: str | None = None,
    since: int | None = None,
    limit: int = 100,
) -> Sequence[JournalEntry]:
    query = select(journal).order_by(journal.c.serial.desc()).limit(limit)
    if repository is not None:
        # "pypi/main" names one repository; a bare "main" both formats' repositories of it.
        if "/" in repository:
            query = query.where(journal.c.repository == repository)
        else:
            query = query.where(
                journal.c.repository.in_([f"{fmt}/{repository}" for fmt in ("pypi", "conda")])
            )
    if actor is not None:
        query = query.where(journal.c.actor == actor)
    if action is not None:
        query = query.where(journal.c.action == action)
    if project is not None:
        # Stored normalised for PyPI, as written (lowercase) for conda: match either.
        query = query.where(journal.c.project.in_({project, canonicalize_name(project)}))
    if since is not None:
        query = query.where(journal.c.serial > since)
    return [
        JournalEntry(
            serial=Serial(row.serial),
            time=_utc(row.time),
            actor=row.actor,
            action=row.action,
            repository=row.repository,
            project=row.project,
            filename=row.filename,
            detail=row.detail,
        )
        for row in conn.execute(query)
    ]


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
