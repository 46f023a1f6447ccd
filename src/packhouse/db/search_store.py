"""The search index: `search_entries` (one row per project or package with a live artifact)
and the full-text index migration 0013 keeps beside it.

`refresh` rewrites the rows of some projects from their artifacts, inside the caller's write
transaction (every upload, yank and delete calls it), so the index is exact at every serial
in every process. `search` finds the rows whose name or summary holds every word typed as a
word prefix, ranked: the exact name first, then names that start with what was typed (the
shorter first), then by relevance (FTS5's bm25 on SQLite, ts_rank on PostgreSQL; a word of
the name weighs more than one of the summary).

SQLite: `search_fts` is an FTS5 table over `search_entries` (external content, rowid =
project_id), kept by three triggers; the unicode61 tokenizer splits `requests-oauthlib` into
`requests` and `oauthlib`. PostgreSQL: the same words as a tsvector in a generated column
(`simple` configuration: no stemming, like FTS5) with a GIN index, searched with prefix
terms (`word:*`).
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
    Select,
    and_,
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
from sqlalchemy.sql import ColumnElement, FromClause

from packhouse.db.schema import artifacts, projects, search_entries, upstream_pages

MAX_WORDS = 8  # words of a query used; more narrow nothing in practice
RANKED_AT_MOST = 2000  # full-text matches ranked by relevance (see _full_text)
_WORD = re.compile(r"[^\W_]+")
# PostgreSQL: the words of name and summary as a tsvector, a generated column that
# migration 0013 adds and indexes (GIN), not declared in schema.py (SEARCH_OBJECTS)
_PG_DOCUMENT: ColumnElement[Any] = literal_column("search_entries.search_document")


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
    _rewrite(conn, artifacts.c.id == chosen, ids)


def uploaded(conn: Connection, project_id: int, artifact_id: int) -> None:
    """The entry of a project after the upload of `artifact_id`, live and not yanked: the
    newest such artifact is that one (the highest id), so the entry is written from its row
    alone instead of sorting every file of the project (a project of 5,000 files made each
    upload read them all)."""
    _rewrite(
        conn,
        (artifacts.c.id == artifact_id) & (artifacts.c.project_id == projects.c.id),
        [project_id],
    )


def _rewrite(conn: Connection, chosen: ColumnElement[bool], ids: list[int] | None) -> None:
    """Replace the entries of projects `ids` (all, when None) by the artifacts `chosen`
    picks, one per project (a join condition on `artifacts` and `projects`)."""
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
        .join(artifacts, chosen)
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
    """The best `limit` entries of these repositories matching every word of `query`.

    Two steps, so a short prefix matching thousands never ranks them all: the names equal
    to or starting with what was typed (a scan of names, exact first, then the shortest),
    and only while fewer than `limit` were found, the full-text matches among the rest by
    relevance."""
    terms = words(query)
    if not terms or not repository_ids:
        return []
    entry = search_entries.c
    typed = query.strip().lower()
    joined = "-".join(terms)  # `Foo Bar`, `foo_bar` and `foo.bar` all mean `foo-bar` here
    starts = sorted({typed, joined})
    prefix = or_(*(entry.name.startswith(s, autoescape=True) for s in starts))
    if conn.dialect.name == "sqlite":  # a range the name index answers (BINARY collation)
        prefix = or_(*(and_(entry.name >= s, entry.name < s + "\U0010ffff") for s in starts))
    exact = entry.name.in_(starts)
    columns = [
        entry.repository_id,
        entry.name,
        entry.display_name,
        entry.version,
        entry.summary,
        entry.uploaded,
    ]
    readable = entry.repository_id.in_(sorted(repository_ids))
    tier = case((exact, 0), else_=1)
    named = conn.execute(
        select(*columns, tier.label("tier"), literal_column("0.0", Float).label("score"))
        .where(readable, prefix)
        .order_by(tier, func.length(entry.name), entry.name)
        .limit(limit)
    ).all()
    rest: Sequence[Any] = ()
    if len(named) < limit:
        rest = conn.execute(
            _full_text(conn, terms, columns)
            .where(readable, ~prefix)
            .order_by(literal_column("score"), entry.name)
            .limit(limit - len(named))
        ).all()
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
        for r in [*named, *rest]
    ]


def _full_text(conn: Connection, terms: list[str], columns: list[Any]) -> Select[Any]:
    """The entries holding every term, with a score (lower is better): relevance while
    at most RANKED_AT_MOST entries match; beyond that (a word in thousands of summaries,
    where relevance says little and computing it for each costs most of a search) the
    entries whose name holds the words first, then by name."""
    entry = search_entries.c
    if conn.dialect.name == "sqlite":
        fts = " ".join(f'"{t}"*' for t in terms)
        match = _FTS.c.search_fts.op("MATCH")
        found = select(_FTS.c.rowid).where(match(fts))
        in_name = select(_FTS.c.rowid).where(match(f"{{name}} : ({fts})"))
        ranked: ColumnElement[Any] = literal_column("bm25(search_fts, 10.0, 1.0)", Float)
        joined: FromClause = search_entries.join(_FTS, _FTS.c.rowid == entry.project_id)
        condition = match(fts)
        by_name = case((entry.project_id.in_(in_name.scalar_subquery()), -1.0), else_=0.0)
    else:
        tsquery = func.to_tsquery("simple", " & ".join(f"{t}:*" for t in terms))
        condition = _PG_DOCUMENT.op("@@")(tsquery)
        found = select(entry.project_id).where(condition)
        ranked = -func.ts_rank(_PG_DOCUMENT, tsquery)
        joined = search_entries
        # every term starts a word of the name: a regular expression per term, as making the
        # name's tsvector for thousands of rows took 40 ms (terms are letters and digits)
        in_words = and_(*(entry.name.regexp_match(f"(^|[-_.]){t}") for t in terms))
        by_name = case((in_words, -1.0), else_=0.0)
    many = conn.execute(
        select(func.count()).select_from(found.limit(RANKED_AT_MOST + 1).subquery())
    ).scalar_one()
    score = by_name if many > RANKED_AT_MOST else ranked
    return (
        select(*columns, literal_column("2").label("tier"), score.label("score"))
        .select_from(joined)
        .where(condition)
    )


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


def cached_names(
    conn: Connection, query: str, proxy_ids: Collection[int], prefix: str
) -> list[tuple[int, str]]:
    """(proxy id, name) of the pages proxies have cached with a 200 answer under `prefix`
    whose name holds the query's first word (`matches_name` decides the rest)."""
    terms = words(query)
    if not terms or not proxy_ids:
        return []
    pages = upstream_pages.c
    rows = conn.execute(
        select(pages.repository_id, pages.key).where(
            pages.repository_id.in_(sorted(proxy_ids)),
            pages.status == 200,
            pages.key.startswith(prefix, autoescape=True),
            pages.key.contains(terms[0], autoescape=True),
        )
    )
    return [(r.repository_id, r.key.removeprefix(prefix)) for r in rows]


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
