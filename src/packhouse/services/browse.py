"""What the web UI lists: repositories with counts, the latest uploads, each repository's
names with where they come from, and search by name and summary.

Both read the search index (db/search_store.py: one row per hosted project or package, from
its newest live upload, rewritten in the transaction of every upload, yank and delete).
Search asks the database's full-text index (FTS5 on SQLite, a GIN tsvector on PostgreSQL)
over the repositories the caller may read, plus the names a PyPI proxy of their order has
cached (what the repository page lists); ranked exact name, name prefix, relevance. The
repository pages' lists and counts come from the same rows, kept in memory per journal
serial and brought up to date by one query for the projects whose `last_serial` moved.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from packhouse.db import search_store
from packhouse.db.repository_store import Repository
from packhouse.db.schema import artifacts, projects, search_entries
from packhouse.services.access import AccessService, Principal
from packhouse.services.catalog import Catalog
from packhouse.services.context import Context
from packhouse.services.upstream_cache import UpstreamCache
from packhouse.types import Action, Format, RepoKind

SEARCH_LIMIT = 50
MAX_FILTERED = 1000  # names a repository page's filter lists
MAX_ROWS = 5000  # index rows read for one search
PROJECT_PAGES = "project/"  # the keys of a PyPI proxy's cached project pages (upstream_cache)
LATEST_LIMIT = 12


@dataclass(frozen=True, slots=True)
class Entry:
    """A hosted project (PyPI) or package (conda) in one repository."""

    repository_id: int
    name: str  # normalised
    display_name: str
    version: str  # of the newest upload
    summary: str
    uploaded: datetime | None  # None: a name a proxy has cached (no upload here)


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
    rank: int  # 0 the exact name, 1 a name prefix, 2 a match elsewhere
    origin: Repository | None = None  # the member of its order that holds it
    proxied: bool = False  # a name only a proxy's cache has


@dataclass
class _Index:
    serial: int
    by_repo: dict[int, dict[str, Entry]]
    files: dict[int, int]


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
        entry = search_entries.c
        query = select(
            projects.c.id,
            projects.c.repository_id,
            projects.c.name,
            projects.c.display_name,
            entry.version,
            entry.uploaded.label("upload_time"),
            entry.summary,
        ).outerjoin(search_entries, entry.project_id == projects.c.id)
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
            names[row.name] = Entry(
                row.repository_id,
                row.name,
                row.display_name,
                row.version,
                row.summary,
                row.upload_time,
            )
        return _Index(serial, by_repo, files)

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
        the repository allows it. With a query: the names matching it, best first (the
        ranking of `search`)."""
        order = self._catalog.order(repo)
        proxies = [m for m in order if m.kind is RepoKind.PROXY]
        cached: set[str] = set()
        if proxies and repo.format is Format.PYPI:
            cached = self._upstreams.page_names([p.id for p in proxies], PROJECT_PAGES)
        if query.strip():
            return [
                Named(
                    h.entry.name,
                    h.entry.display_name,
                    h.origin or repo,
                    h.entry.summary,
                    h.entry.version,
                    not h.proxied
                    and h.entry.name in cached
                    and h.entry.name not in repo.allow_upstream,
                )
                for h in self._find([repo], query, MAX_FILTERED)
            ]
        index = self._current()
        seen: dict[str, Named] = {}
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
        for name in sorted(cached - set(seen)):
            seen[name] = Named(name, name, proxies[0])
        return sorted(seen.values(), key=lambda n: n.name)

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
        """What the caller may read that matches `query`, best first, each name once per
        format (shown in the repository that reads it directly, before any group)."""
        readable = self.readable(who)
        readable.sort(key=lambda r: r.kind is not RepoKind.HOSTED or bool(r.bases))
        return self._find(readable, query, limit)

    def _find(self, repos: Sequence[Repository], query: str, limit: int) -> list[Hit]:
        if not search_store.words(query):
            return []
        readable_ids = {r.id for r in repos}
        hosted: dict[int, tuple[Repository, Repository]] = {}  # member id -> (where, member)
        proxies: dict[int, tuple[Repository, Repository]] = {}
        for repo in repos:
            for member in self._catalog.order(repo):
                where = member if member.id in readable_ids else repo
                if member.kind is not RepoKind.PROXY:
                    hosted.setdefault(member.id, (where, member))
                elif repo.format is Format.PYPI:  # what the repository page lists
                    proxies.setdefault(member.id, (where, member))
        # a name may be in several members: ask for enough rows to keep `limit` names
        wanted = min(limit * max(1, len(hosted)), MAX_ROWS)
        with self._ctx.db.read() as conn:
            found = search_store.search(conn, query, hosted, wanted)
        ranked: list[tuple[tuple[int, int, float, bool, str], Hit]] = []
        for f in found:
            where, member = hosted[f.repository_id]
            entry = Entry(f.repository_id, f.name, f.display_name, f.version, f.summary, f.uploaded)
            shortest = len(f.name) if f.tier == 1 else 0
            key = (f.tier, shortest, f.score, False, f.name)
            ranked.append((key, Hit(where, entry, f.tier, member)))
        if proxies:
            with self._ctx.db.read() as conn:
                cached = search_store.cached_names(conn, query, proxies, PROJECT_PAGES)
            for proxy_id, name in cached:
                tier, matches = search_store.matches_name(name, query)
                if matches:
                    where, member = proxies[proxy_id]
                    entry = Entry(proxy_id, name, name, "", "", None)
                    key = (tier, len(name) if tier == 1 else 0, 0.0, True, name)
                    ranked.append((key, Hit(where, entry, tier, member, proxied=True)))
        ranked.sort(key=lambda kv: kv[0])
        hits: dict[tuple[str, str], Hit] = {}
        for _, hit in ranked:
            hits.setdefault((hit.repository.format.value, hit.entry.name), hit)
            if len(hits) == limit:
                break
        return list(hits.values())
