"""The search index: `search_entries` (one row per project or package with a live artifact)
and the full-text index migration 0013 keeps beside it.

`refresh` rewrites the rows of some projects from their artifacts, inside the caller's write
transaction (every upload, yank and delete calls it), so the index is exact at every serial
in every process. `search` finds the rows whose name or summary holds every word typed as a
word prefix, ranked: the exact name first, then names that start with what was typed, then
by relevance (the shorter name first among prefixes; FTS5's bm25 on SQLite, ts_rank on PostgreSQL; a word of the name weighs more
than one of the summary).

SQLite: `search_fts` is an FTS5 table over `search_entries` (external content, rowid =
project_id), kept by three triggers; the unicode61 tokenizer splits `requests-oauthlib` into
`requests` and `oauthlib`. PostgreSQL: a GIN index over the same words as a tsvector
(`simple` configuration: no stemming, like FTS5), searched with prefix terms (`word:*`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    case,
    column,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.sql import ColumnElement

from packhouse.db.schema import artifacts, projects, search_entries

MAX_WORDS = 8  # words of a query used; more narrow nothing in practice
_WORD = re.compile(r"[^\W_]+")
# The tsvector PostgreSQL indexes (ix_search_entries_document, migration 0013) and searches:
# the same text in both places, or the index is not used.
PG_DOCUMENT = (
    "setweight(to_tsvector('simple', translate(search_entries.name, '-_.', '   ')), 'A')"
    " || setweight(to_tsvector('simple', search_entries.summary), 'B')"
)


_FTS = table("search_fts", column("rowid"), column("search_fts"))  # SQLite (migration 0013)


def words(query: str) -> list[str]:
    """The words of a query as both full-text engines split them (letters and digits)."""
    return _WORD.findall(query.lower())[:MAX_WORDS]


def summary_column() -> ColumnElement[Any]:
    """An artifact's summary: PyPI core metadata's, or a conda package's about.summary."""
    pypi = artifacts.c.metadata["summary"].as_string()
    conda = artifacts.c.metadata[("about", "summary")].as_string()
    return func.trim(func.coalesce(pypi, conda, ""))


def refresh(conn: Connection, project_ids: Iterable[int] | None = None) -> None:
    """Rewrite the entries of these projects (all, when None) from their live artifacts:
    the newest not yanked, else the newest; no entry for a project with none left."""
    ids = None if project_ids is None else sorted(set(project_ids))
    if ids == []:
        return
    chosen = (
        select(artifacts.c.id)
        .where(artifacts.c.project_id == projects.c.id, artifacts.c.deleted.is_(False))
        .order_by(artifacts.c.yanked, artifacts.c.id.desc())
        .limit(1)
        .correlate(projects)
        .scalar_subquery()
    )
    rows = (
        select(
            projects.c.id,
            projects.c.repository_id,
            projects.c.name,
            projects.c.display_name,
            artifacts.c.version,
            summary_column(),
            artifacts.c.upload_time,
        )
        .select_from(projects)
        .join(artifacts, artifacts.c.id == chosen)
    )
    dropped = delete(search_entries)
    if ids is not None:
        rows = rows.where(projects.c.id.in_(ids))
        dropped = dropped.where(search_entries.c.project_id.in_(ids))
    conn.execute(dropped)
    conn.execute(
        insert(search_entries).from_select(
            [
                "project_id",
                "repository_id",
                "name",
                "display_name",
                "version",
                "summary",
                "uploaded",
            ],
            rows,
        )
    )


@dataclass(frozen=True, slots=True)
class Found:
    repository_id: int
    name: str
    display_name: str
    version: str
    summary: str
    uploaded: datetime | None
    tier: int  # 0 the exact name, 1 a name prefix, 2 a match elsewhere
    score: float  # lower is better (bm25, or -ts_rank)


def search(
    conn: Connection, query: str, repository_ids: Collection[int], limit: int
) -> list[Found]:
    """The best `limit` entries of these repositories matching every word of `query`."""
    terms = words(query)
    if not terms or not repository_ids:
        return []
    entry = search_entries.c
    typed = query.strip().lower()
    joined = "-".join(terms)  # `Foo Bar`, `foo_bar` and `foo.bar` all mean `foo-bar` here
    exact = entry.name.in_({typed, joined})
    prefix = or_(
        entry.name.startswith(typed, autoescape=True),
        entry.name.startswith(joined, autoescape=True),
    )
    tier = case((exact, 0), (prefix, 1), else_=2).label("tier")
    shortest = case((prefix, func.length(entry.name)), else_=0)  # `requests` before `requests-x`
    columns = [
        entry.repository_id,
        entry.name,
        entry.display_name,
        entry.version,
        entry.summary,
        entry.uploaded,
        tier,
    ]
    if conn.dialect.name == "sqlite":
        fts = " ".join(f'"{t}"*' for t in terms)
        score = literal_column("bm25(search_fts, 10.0, 1.0)", Float).label("score")
        found = (
            select(*columns, score)
            .select_from(search_entries)
            .join(_FTS, _FTS.c.rowid == entry.project_id)
            .where(_FTS.c.search_fts.op("MATCH")(fts))
        )
    else:
        tsquery = func.to_tsquery("simple", " & ".join(f"{t}:*" for t in terms))
        document = literal_column(PG_DOCUMENT)
        score = (-func.ts_rank(document, tsquery)).label("score")
        found = select(*columns, score).where(document.op("@@")(tsquery))
    found = (
        found.where(entry.repository_id.in_(sorted(repository_ids)))
        .order_by(tier, shortest, score, entry.name)
        .limit(limit)
    )
    return [
        Found(
            r.repository_id,
            r.name,
            r.display_name,
            r.version,
            r.summary,
            _utc(r.uploaded),
            int(r.tier),
            float(r.score),
        )
        for r in conn.execute(found)
    ]


def matches_name(name: str, query: str) -> tuple[int, bool]:
    """(tier, matches) of a bare name (a proxy's cached project) by the rules `search`
    applies: every word typed a prefix of a word of the name."""
    terms = words(query)
    typed = query.strip().lower()
    joined = "-".join(terms)
    if not terms:
        return 2, False
    if name in (typed, joined):
        return 0, True
    if name.startswith((typed, joined)):
        return 1, True
    parts = _WORD.findall(name)
    return 2, all(any(p.startswith(t) for p in parts) for t in terms)


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def count(conn: Connection, repository_ids: Sequence[int] | None = None) -> int:
    query = select(func.count()).select_from(search_entries)
    if repository_ids is not None:
        query = query.where(search_entries.c.repository_id.in_(repository_ids))
    return int(conn.execute(query).scalar_one())
