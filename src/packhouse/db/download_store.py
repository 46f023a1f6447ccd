"""Download counts per hosted file and UTC day."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from packhouse.db.schema import artifacts, download_counts, projects


def add(conn: Connection, counts: Mapping[tuple[int, str], int]) -> None:
    """Add `counts` ({(artifact id, day): n}) in one statement per row, upserting. Rows of
    artifacts deleted meanwhile are skipped."""
    if not counts:
        return
    live = {
        r.id
        for r in conn.execute(
            select(artifacts.c.id).where(artifacts.c.id.in_({a for a, _ in counts}))
        )
    }
    rows = [
        {"artifact_id": a, "day": day, "count": n}
        for (a, day), n in sorted(counts.items())
        if a in live
    ]
    if not rows:
        return
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = make(download_counts)
    statement = statement.on_conflict_do_update(
        index_elements=["artifact_id", "day"],
        set_={"count": download_counts.c.count + statement.excluded.count},
    )
    conn.execute(statement, rows)


def per_day(conn: Connection, artifact_ids: Sequence[int], since: str) -> list[tuple[str, int]]:
    """(day, downloads) summed over the artifacts, from `since` (a day) on."""
    if not artifact_ids:
        return []
    rows = conn.execute(
        select(download_counts.c.day, func.sum(download_counts.c.count).label("n"))
        .where(download_counts.c.artifact_id.in_(artifact_ids), download_counts.c.day >= since)
        .group_by(download_counts.c.day)
        .order_by(download_counts.c.day)
    )
    return [(r.day, int(r.n)) for r in rows]


def per_artifact(conn: Connection, artifact_ids: Sequence[int]) -> dict[int, int]:
    """Every download of each artifact, all days."""
    if not artifact_ids:
        return {}
    rows = conn.execute(
        select(download_counts.c.artifact_id, func.sum(download_counts.c.count).label("n"))
        .where(download_counts.c.artifact_id.in_(artifact_ids))
        .group_by(download_counts.c.artifact_id)
    )
    return {r.artifact_id: int(r.n) for r in rows}


def versions_of(
    conn: Connection, repository_ids: Sequence[int], name: str
) -> list[tuple[int, str]]:
    """(artifact id, version) of every file of project `name` in those repositories."""
    rows = conn.execute(
        select(artifacts.c.id, artifacts.c.version)
        .join(projects, projects.c.id == artifacts.c.project_id)
        .where(
            projects.c.repository_id.in_(repository_ids),
            projects.c.name == name,
            artifacts.c.deleted.is_(False),
        )
    ).all()
    return [(row.id, row.version) for row in rows]
