"""What the web UI lists: repositories with counts, the latest uploads, each repository's
names with where they come from, and search by name and summary.

The list of every hosted project (its name as written, newest upload's version and summary)
is kept in memory per journal serial and brought up to date by one query for the projects
whose `last_serial` moved (every upload, yank or delete stamps it), so several server
processes stay honest through the database alone. Search scans that list: substring
matches on the name and the summary, ranked exact name, name prefix, name, summary. With
10,000 projects the list is a few megabytes and a search a few milliseconds (bench/ui.py);
it needs no migration, no hook on the upload path, and reads the same on SQLite and
PostgreSQL. Full-text search (FTS5, tsvector) would add stemming; see docs/ui.md.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql import ColumnElement

from packhouse.db.repository_store import Repository
from packhouse.db.schema import artifacts, projects
from packhouse.services.access import AccessService, Principal
from packhouse.services.catalog import Catalog
from packhouse.services.context import Context
from packhouse.services.upstream_cache import UpstreamCache
from packhouse.types import Action, Format, RepoKind

SEARCH_LIMIT = 50
LATEST_LIMIT = 12


@dataclass(frozen=True, slots=True)
class Entry:
    """A hosted project (PyPI) or package (conda) in one repository."""

    repository_id: int
    name: str  # normalised
    display_name: str
    version: str  # of the newest upload
    summary: str
    uploaded: datetime
    haystack_name: str = field(repr=False, default="")  # display name lowered, name
    haystack_summary: str = field(repr=False, default="")
    display_lower: str = field(repr=False, default="")


@dataclass(frozen=True, slots=True)
class Named:
    """A name a repository serves, and which member of its order it comes from."""

    name: str
    display_name: str
    origin: Repository
    summary: str = ""
    version: str = ""
    shadowed_upstream: bool = False  # a hosted name that proxies are kept from (the rule)


@dataclass(frozen=True, slots=True)
class Upload:
    repository: Repository
    project: str
    display_name: str
    version: str
    filename: str
    size: int
    uploaded: datetime
    uploader: str


@dataclass(frozen=True, slots=True)
class RepoSummary:
    repository: Repository
    projects: int  # hosted names in its resolution order
    files: int
    order: tuple[Repository, ...]
    public: bool = False  # anonymous callers may read it


@dataclass(frozen=True, slots=True)
class Hit:
    repository: Repository  # where to show it (a repository the caller may read)
    entry: Entry
    rank: int


@dataclass
class _Index:
    serial: int
    by_repo: dict[int, dict[str, Entry]]
    files: dict[int, int]
    sorted_by_repo: dict[int, tuple[Entry, ...]] = field(default_factory=dict)  # by name


def _summary_column() -> ColumnElement[Any]:
    pypi = artifacts.c.metadata["summary"].as_string()
    conda = artifacts.c.metadata[("about", "summary")].as_string()
    return func.coalesce(pypi, conda, "")


class Browse:
    def __init__(
        self, ctx: Context, catalog: Catalog, access: AccessService, upstreams: UpstreamCache
    ) -> None:
        self._ctx = ctx
        self._catalog = catalog
        self._access = access
        self._upstreams = upstreams
        self._index: _Index | None = None
        self._lock = threading.Lock()

    # -- the in-memory list ---------------------------------------------------------------

    def _current(self) -> _Index:
        serial = self._ctx.db.watcher.current()
        index = self._index
        if index is not None and index.serial == serial:
            return index
        with self._lock:
            index = self._index
            if index is not None and index.serial == serial:
                return index
            self._index = index = self._refresh(index, serial)
            return index

    def _refresh(self, old: _Index | None, serial: int) -> _Index:
        newest = (
            select(func.max(artifacts.c.id))
            .where(artifacts.c.project_id == projects.c.id, artifacts.c.deleted.is_(False))
            .correlate(projects)
            .scalar_subquery()
        )
        query = (
            select(
                projects.c.id,
                projects.c.repository_id,
                projects.c.name,
                projects.c.display_name,
                artifacts.c.version,
                artifacts.c.upload_time,
                _summary_column().label("summary"),
            )
            .select_from(projects)
            .outerjoin(artifacts, artifacts.c.id == newest)
        )
        since = 0 if old is None else old.serial
        if old is not None:
            query = query.where(projects.c.last_serial > since)
        by_repo = {} if old is None else {k: dict(v) for k, v in old.by_repo.items()}
        with self._ctx.db.read() as conn:
            rows = conn.execute(query).all()
            files = {
                r.repository_id: r.n
                for r in conn.execute(
                    select(artifacts.c.repository_id, func.count().label("n"))
                    .where(artifacts.c.deleted.is_(False))
                    .group_by(artifacts.c.repository_id)
                )
            }
        for row in rows:
            names = by_repo.setdefault(row.repository_id, {})
            if row.version is None:
                names.pop(row.name, None)
                continue
            summary = (row.summary or "").strip()
            names[row.name] = Entry(
                row.repository_id,
                row.name,
                row.display_name,
                row.version,
                summary,
                row.upload_time,
                row.display_name.lower() + " " + row.name,
                summary.lower(),
                row.display_name.lower(),
            )
        ordered = {
            rid: tuple(sorted(names.values(), key=lambda e: e.name))
            for rid, names in by_repo.items()
        }
        return _Index(serial, by_repo, files, ordered)

    # -- what a caller may read -----------------------------------------------------------

    def readable(self, who: Principal, fmt: Format | None = None) -> list[Repository]:
        repos = [r for r in self._catalog.all(fmt) if self._access.can(who, r, Action.READ)]
        return sorted(repos, key=lambda r: (r.format.value, r.name))

    def summaries(self, who: Principal) -> list[RepoSummary]:
        index = self._current()
        out = []
        for repo in self.readable(who):
            order = self._catalog.order(repo)
            hosted = [m for m in order if m.kind is not RepoKind.PROXY]
            names: set[str] = set()
            for member in hosted:
                names.update(index.by_repo.get(member.id, {}))
            files = sum(index.files.get(m.id, 0) for m in hosted)
            public = self._access.is_public(repo.id)
            out.append(RepoSummary(repo, len(names), files, tuple(order), public))
        return out

    def latest_uploads(
        self, who: Principal, repos: Sequence[Repository] | None = None, limit: int = LATEST_LIMIT
    ) -> list[Upload]:
        """The newest live files of the hosted repositories the caller reads (directly or
        through a group), newest first."""
        shown: dict[int, Repository] = {}
        for repo in self.readable(who) if repos is None else repos:
            for member in self._catalog.order(repo):
                if member.kind is not RepoKind.PROXY:
                    shown.setdefault(member.id, member)
        if not shown:
            return []
        with self._ctx.db.read() as conn:
            rows = conn.execute(
                select(
                    artifacts.c.repository_id,
                    artifacts.c.filename,
                    artifacts.c.version,
                    artifacts.c.size,
                    artifacts.c.upload_time,
                    artifacts.c.uploader,
                    projects.c.name,
                    projects.c.display_name,
                )
                .join(projects, projects.c.id == artifacts.c.project_id)
                .where(artifacts.c.repository_id.in_(shown), artifacts.c.deleted.is_(False))
                .order_by(artifacts.c.id.desc())
                .limit(limit)
            ).all()
        return [
            Upload(
                shown[r.repository_id],
                r.name,
                r.display_name,
                r.version,
                r.filename,
                r.size,
                r.upload_time,
                r.uploader,
            )
            for r in rows
        ]

    # -- one repository -------------------------------------------------------------------

    def names(self, repo: Repository, query: str = "") -> list[Named]:
        """Every name `repo` serves, from the first member of its order that holds it;
        names only a proxy has are those it has cached (an upstream's full list is never
        fetched). A hosted name keeps proxies out (the dependency-confusion rule) unless
        the repository allows it."""
        index = self._current()
        order = self._catalog.order(repo)
        seen: dict[str, Named] = {}
        proxies = [m for m in order if m.kind is RepoKind.PROXY]
        cached: set[str] = set()
        if proxies and repo.format is Format.PYPI:
            cached = self._upstreams.page_names([p.id for p in proxies], "project/")
        for member in order:
            if member.kind is RepoKind.PROXY:
                continue
            for name, entry in index.by_repo.get(member.id, {}).items():
                if name not in seen:
                    shadowed = name in cached and name not in repo.allow_upstream
                    seen[name] = Named(
                        name,
                        entry.display_name,
                        member,
                        entry.summary,
                        entry.version,
                        shadowed,
                    )
        if cached:
            for name in sorted(cached - set(seen)):
                seen[name] = Named(name, name, proxies[0])
        wanted = query.strip().lower()
        found = [
            n
            for n in seen.values()
            if not wanted
            or wanted in n.name
            or wanted in n.display_name.lower()
            or wanted in n.summary.lower()
        ]
        return sorted(found, key=lambda n: n.name)

    def entry(self, repo: Repository, name: str) -> Entry | None:
        """The newest upload's summary of a hosted name in `repo`'s order, if any."""
        index = self._current()
        for member in self._catalog.order(repo):
            found = index.by_repo.get(member.id, {}).get(name)
            if found is not None:
                return found
        return None

    # -- search ---------------------------------------------------------------------------

    def search(self, who: Principal, query: str, limit: int = SEARCH_LIMIT) -> list[Hit]:
        wanted = query.strip().lower()
        if not wanted:
            return []
        index = self._current()
        hits: dict[tuple[str, str], tuple[int, str, Repository, Entry]] = {}
        readable = self.readable(who)
        readable_ids = {r.id for r in readable}
        # a repository the caller reads directly shows its own names before any group
        readable.sort(key=lambda r: r.kind is not RepoKind.HOSTED or bool(r.bases))
        for repo in readable:
            for member in self._catalog.order(repo):
                if member.kind is RepoKind.PROXY:
                    continue
                where = member if member.id in readable_ids else repo
                fmt = repo.format.value
                entries = index.sorted_by_repo.get(member.id, ())
                for rank, entry in _first_matches(entries, wanted, limit):
                    key = (fmt, entry.name)
                    if key not in hits:
                        hits[key] = (rank, entry.name, where, entry)
        best = heapq.nsmallest(limit, hits.values(), key=lambda h: (h[0], h[1]))
        return [Hit(where, entry, rank) for rank, _, where, entry in best]


def _first_matches(
    entries: Sequence[Entry], wanted: str, limit: int
) -> Iterable[tuple[int, Entry]]:
    """(rank, entry) of the first `limit` entries (in name order) of each rank matching:
    0 the exact name, 1 a name prefix, 2 in the name, 3 in the summary. The best `limit`
    overall are among them, and a search matching thousands keeps only these."""
    kept = [0, 0, 0, 0]
    for e in entries:
        name = e.haystack_name
        if wanted in name:
            if e.name == wanted or e.display_lower == wanted:
                rank = 0
            elif name.startswith(wanted):
                rank = 1
            else:
                rank = 2
        elif wanted in e.haystack_summary:
            rank = 3
        else:
            continue
        if kept[rank] < limit:
            kept[rank] += 1
            yield rank, e
