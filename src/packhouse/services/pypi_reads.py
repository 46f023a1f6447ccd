"""Reading PyPI repositories: simple pages, the JSON API, files, all through the page cache.

A big project's simple page is re-rendered incrementally after a change. For each (resolution
order, project) with at least `parts_min_files` live files, the reader keeps every file's
rendered parts (its sort key, version, PEP 503 anchor line and PEP 691 JSON object; not its
`SimpleFile`, which would add half as much memory again), in page order, and for each
repository of the order the project's serial they are good at. Every change to an artifact
(upload, yank, unyank, delete) sets its `serial` and the project's `last_serial` to the
change's serial in one transaction, and writers are serialised, so after a change the reader
reads only the project's artifacts whose serial is above the one it holds, applies them and
joins the parts again: the same bytes as a full render (tests check it). Anything unexpected
(the project gone or replaced, a snapshot older than the parts, a part missing) throws the
parts away and reads everything again. Parts are kept in an LRU bounded by `parts_max_bytes`.

The parts themselves are rendered once, when a file is stored (table `page_parts`), so a full
read (the first page after a restart) joins stored bytes instead of rendering every file; the
JSON API document of a hosted order is joined the same way from `api_parts`
(services/pypi_api.py). Orders with proxies render their pages whole, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from packaging.utils import canonicalize_name
from sqlalchemy import Connection, select

from packhouse.db import artifact_store, repository_store
from packhouse.db.artifact_store import Artifact
from packhouse.db.repository_store import Project, Repository
from packhouse.db.schema import artifacts
from packhouse.errors import ArtifactNotFound, ProjectNotFound
from packhouse.formats.pypi import jsonapi, simple
from packhouse.formats.pypi.remote import RemoteFile
from packhouse.services import pypi_api
from packhouse.services.catalog import Catalog
from packhouse.services.context import Context
from packhouse.services.pages import Page
from packhouse.services.pypi_api import core_metadata, json_file
from packhouse.services.pypi_parts import (
    SIMPLE_COLUMNS,
    PartsCache,
    PartsRead,
    PartsStats,
    ProjectParts,
    ProjectRead,
    SortKey,
    read_parts,
    simple_file,
    sort_key,
    version_key,
    version_order,
)
from packhouse.services.pypi_proxy import ProxyPage, PypiProxy, project_of
from packhouse.services.sources import Cooldowns, Resolution, proxies_of, resolve
from packhouse.services.upstream_cache import Download, StoredFile
from packhouse.types import Format, RepoKind

JSON_TYPE = "application/json"
INDEX_REFRESH = 30.0  # seconds a project list of an order with proxies is served unchecked


@dataclass(frozen=True)
class FoundFile:
    artifact: Artifact
    holders: tuple[Repository, ...]  # the repositories that hold it


class PypiReader:
    def __init__(
        self,
        ctx: Context,
        catalog: Catalog,
        proxy: PypiProxy,
        *,
        parts_min_files: int = 200,
        parts_max_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._ctx = ctx
        self._catalog = catalog
        self.proxy = proxy
        # Projects with at least this many live files keep their rendered parts (see the
        # module docstring); smaller ones render whole in a few milliseconds.
        self.parts_min_files = parts_min_files
        self._parts = PartsCache(parts_max_bytes)
        self.parts_stats = PartsStats()

    # -- project pages --------------------------------------------------------------------

    def cached_project_page(
        self,
        repo: Repository,
        project: str,
        kind: Literal["html", "json"],
        serial: int | None = None,
    ) -> Page | None:
        """The page if it is known good at the newest serial (or `serial`, when the caller
        has just read it): no database, no rendering. `project` must be canonical."""
        if serial is None:
            serial = self._ctx.db.watcher.current()
        return self._ctx.pages.fresh(("pypi-project", repo.id, project, kind), serial)

    def cached_index_page(
        self, repo: Repository, kind: Literal["html", "json"], serial: int | None = None
    ) -> Page | None:
        """The project list if it is known good at the newest serial (or `serial`)."""
        if serial is None:
            serial = self._ctx.db.watcher.current()
        return self._ctx.pages.fresh(("pypi-index", repo.id, kind), serial)

    def project_page(self, repo: Repository, project: str, kind: Literal["html", "json"]) -> Page:
        name = canonicalize_name(project)
        serial = self._ctx.db.watcher.current()
        order = self._catalog.order(repo, serial)
        if proxies_of(order):
            return self._proxied_project_page(repo, order, name, kind, serial)
        ids = tuple(r.id for r in order)

        def stamp() -> tuple[object, ...]:
            return self._project_stamp(ids, name)

        def render() -> Page:
            body, last_serial = self._project_body(order, ids, name, kind)
            if body is None:
                raise ProjectNotFound(f"there is no project {project!r} in {repo.name!r}")
            content_type = simple.JSON_V1 if kind == "json" else simple.TEXT_HTML
            return Page.of(body, content_type, last_serial)

        return self._ctx.pages.get(("pypi-project", repo.id, name, kind), serial, stamp, render)

    def _proxied_project_page(
        self,
        repo: Repository,
        order: Sequence[Repository],
        name: str,
        kind: Literal["html", "json"],
        serial: int,
    ) -> Page:
        """A project page of an order with proxies: the confusion rule first (a hosted name
        asks no upstream), then each allowed proxy's files through the cooldowns. The page
        expires with the proxies' answers, so the fast path asks again after their ttl."""
        ids = tuple(r.id for r in order)
        found: dict[str, Any] = {}

        def stamp() -> tuple[object, ...]:
            resolution, serials, proxied = self._through_proxies(order, name)
            found.update(resolution=resolution, proxied=proxied)
            return _proxied_stamp(ids, serials, proxied)

        def expires() -> float | None:
            return min((a.expires for _, a, _ in found["proxied"]), default=None)

        def render() -> Page:
            resolution = found["resolution"]
            with self._ctx.db.read() as conn:
                read = self._read_project(conn, resolution.hosted, name)
            stale = False
            for proxy, answer, shown in found["proxied"]:
                stale = stale or answer.stale
                if shown:
                    read.append((Project(0, proxy.id, name, name, 0), shown))
            files, versions, last_serial = _page_files(read)
            if not files:
                raise ProjectNotFound(_nothing_shown(repo, name, found["proxied"]))
            page = simple.ProjectPage(
                name=name, files=files, versions=versions, last_serial=last_serial
            )
            body = simple.project_json(page) if kind == "json" else simple.project_html(page)
            content_type = simple.JSON_V1 if kind == "json" else simple.TEXT_HTML
            return Page.of(body, content_type, last_serial, stale=stale)

        key = ("pypi-project", repo.id, name, kind)
        return self._ctx.pages.get(key, serial, stamp, render, expires)

    def _through_proxies(
        self, order: Sequence[Repository], name: str
    ) -> tuple[Resolution, dict[int, int], list[Proxied]]:
        """The resolution of `name` over an order with proxies (the confusion rule: a
        hosted name asks no upstream), the project's serial in each repository, and each
        allowed proxy's answer with the files its cooldowns let through."""
        ids = tuple(r.id for r in order)
        with self._ctx.db.read() as conn:
            serials = repository_store.project_serials(conn, ids, name)
        resolution = resolve(order, name, serials)
        now = self._ctx.clock()
        proxied: list[Proxied] = []
        for proxy in resolution.proxies:
            answer = self.proxy.project(proxy, name)
            cutoff = Cooldowns.of(order, proxy).cutoff(name, now)
            shown = self.proxy.visible(answer.files, cutoff) if answer.found else []
            proxied.append((proxy, answer, shown))
        return resolution, serials, proxied

    def _project_body(
        self,
        order: Sequence[Repository],
        ids: tuple[int, ...],
        name: str,
        kind: Literal["html", "json"],
    ) -> tuple[bytes | None, int]:
        """A project page's bytes (None: no live file) and its last serial: from kept parts
        brought up to date when there are some, else read whole (and kept, if big enough)."""
        key = (ids, name)
        parts = self._parts.get(key)
        if parts is not None:
            with parts.lock:
                with self._ctx.db.read() as conn:
                    ok = parts.catch_up(conn, order, name, self.parts_stats)
                if ok:
                    self._parts.put(key, parts)  # its size may have changed
                    return parts.body(name, kind), parts.last_serial
            self.parts_stats.fallbacks += 1
            self._parts.discard(key, parts)
        with self._ctx.db.read() as conn:
            read = self._read_parts(conn, order, name)
        parts = ProjectParts.build(ids, read)
        if sum(len(files) for _, files in read) >= self.parts_min_files:
            self._parts.put(key, parts)
        return parts.body(name, kind), parts.last_serial

    def _project_stamp(self, ids: tuple[int, ...], name: str) -> tuple[object, ...]:
        """What a project's pages depend on: the resolution order and the project's serial
        in each repository of it."""
        with self._ctx.db.read() as conn:
            serials = repository_store.project_serials(conn, ids, name)
        return (ids, tuple(sorted(serials.items())))

    def _read_parts(self, conn: Connection, order: Sequence[Repository], name: str) -> PartsRead:
        """Every live file of `name` in each repository of the order, as its page's part
        (stored when it was uploaded; rendered now where there is none)."""
        read: PartsRead = []
        for repo in order:
            project = repository_store.get_project(conn, repo.id, name)
            if project is None:
                continue
            read.append((project, read_parts(conn, project.id)))
        self.parts_stats.full_reads += 1
        self.parts_stats.rows_read += sum(len(files) for _, files in read)
        return read

    def _read_project(
        self, conn: Connection, order: Sequence[Repository], name: str
    ) -> ProjectRead:
        """Every live file of `name` in each repository of the order (read with only the
        columns the simple page needs)."""
        read: ProjectRead = []
        for repo in order:
            project = repository_store.get_project(conn, repo.id, name)
            if project is None:
                continue
            rows = conn.execute(
                select(*SIMPLE_COLUMNS)
                .where(artifacts.c.project_id == project.id, artifacts.c.deleted.is_(False))
                .order_by(artifacts.c.id)
            )
            files = [(row.version, simple_file(row)) for row in rows]
            read.append((project, files))
        self.parts_stats.full_reads += 1
        self.parts_stats.rows_read += sum(len(files) for _, files in read)
        return read

    def _files(self, order: Sequence[Repository], name: str) -> tuple[list[Artifact], int]:
        """Files of `name` across the resolution order; the first repository to hold a
        filename wins."""
        seen: set[str] = set()
        files: list[Artifact] = []
        last_serial = 0
        with self._ctx.db.read() as conn:
            for repo in order:
                project = repository_store.get_project(conn, repo.id, name)
                if project is None:
                    continue
                last_serial = max(last_serial, project.last_serial)
                for artifact in artifact_store.for_project(conn, project.id):
                    if artifact.filename not in seen:
                        seen.add(artifact.filename)
                        files.append(artifact)
        files.sort(key=lambda a: (version_key(a.version), a.filename))
        return files, last_serial

    # -- the project list -----------------------------------------------------------------

    def index_page(self, repo: Repository, kind: Literal["html", "json"]) -> Page:
        serial = self._ctx.db.watcher.current()
        order = self._catalog.order(repo, serial)
        ids = tuple(r.id for r in order)

        proxy_ids = [r.id for r in proxies_of(order)]

        def stamp() -> tuple[object, ...]:
            with self._ctx.db.read() as conn:
                serials = tuple(sorted(repository_store.repo_serials(conn, ids).items()))
            cached = self.proxy.cache.pages_stamp(proxy_ids) if proxy_ids else ()
            return (ids, serials, cached)

        def expires() -> float | None:
            # what proxies have cached changes without the journal moving
            return time.monotonic() + INDEX_REFRESH if proxy_ids else None

        def render() -> Page:
            # A proxy's list is what it has cached: the upstream's list of every project is
            # never fetched.
            names: set[str] = self.proxy.cache.page_names(proxy_ids, "project/")
            last_serial = 0
            with self._ctx.db.read() as conn:
                for r, s in repository_store.repo_serials(conn, ids).items():
                    last_serial = max(last_serial, s)
                    names.update(n for n, _ in repository_store.project_names(conn, r))
            index = simple.ProjectIndex(projects=sorted(names), last_serial=last_serial)
            if kind == "json":
                return Page.of(simple.index_json(index), simple.JSON_V1, last_serial)
            return Page.of(simple.index_html(index), simple.TEXT_HTML, last_serial)

        return self._ctx.pages.get(("pypi-index", repo.id, kind), serial, stamp, render, expires)

    # -- PyPI's JSON API ------------------------------------------------------------------

    def cached_json_api(
        self, repo: Repository, project: str, version: str | None, base_url: str
    ) -> Page | None:
        """The JSON API document if it is known good at the newest serial (no database, no
        rendering, no thread), as `json_api` would answer it."""
        key = ("pypi-json", repo.id, canonicalize_name(project), version, base_url)
        return self._ctx.pages.fresh(key, self._ctx.db.watcher.current())

    def json_api(self, repo: Repository, project: str, version: str | None, base_url: str) -> Page:
        name = canonicalize_name(project)
        serial = self._ctx.db.watcher.current()
        order = self._catalog.order(repo, serial)
        ids = tuple(r.id for r in order)
        through_proxies = bool(proxies_of(order))
        found: dict[str, Any] = {"hosted": order, "proxied": []}

        def stamp() -> tuple[object, ...]:
            if not through_proxies:
                return self._project_stamp(ids, name)
            resolution, serials, proxied = self._through_proxies(order, name)
            found.update(hosted=resolution.hosted, proxied=proxied)
            return _proxied_stamp(ids, serials, proxied)

        def expires() -> float | None:
            return min((a.expires for _, a, _ in found["proxied"]), default=None)

        def render() -> Page:
            page_url = f"{base_url}/ui/pypi/{repo.name}/{name}/"
            if not through_proxies:
                with self._ctx.db.read() as conn:
                    joined, serial_of = pypi_api.document(
                        conn, order, name, version, base_url, page_url
                    )
                if joined is None:
                    raise ProjectNotFound(f"there is no project {project!r} in {repo.name!r}")
                return Page.of(joined, JSON_TYPE, serial_of)
            files, last_serial = self._files(found["hosted"], name)
            releases = _releases(files, base_url)
            stale = any(a.stale for _, a, _ in found["proxied"])
            shown = [pair for _, _, pairs in found["proxied"] for pair in pairs]
            if shown:
                releases = _with_proxied(releases, shown, base_url)
            if not releases:
                raise ProjectNotFound(f"there is no project {project!r} in {repo.name!r}")
            doc = jsonapi.JsonProject(
                name=files[-1].project if files else name,
                releases=releases,
                last_serial=last_serial,
                project_page_url=page_url,
            )
            if version is None:
                body = jsonapi.project_json(doc)
            else:
                body = jsonapi.release_json(doc, version)
            return Page.of(body, JSON_TYPE, last_serial, stale=stale)

        key = ("pypi-json", repo.id, name, version, base_url)
        return self._ctx.pages.get(key, serial, stamp, render, expires)

    # -- files ----------------------------------------------------------------------------

    def find_file(self, sha256: str, filename: str) -> FoundFile:
        """The live artifact with these bytes and this name, and where it is held."""
        with self._ctx.db.read() as conn:
            found = [
                a
                for a in artifact_store.by_sha256(conn, sha256)
                if a.filename == filename and not a.deleted
            ]
        if not found:
            raise ArtifactNotFound(f"there is no file {filename!r} with sha256 {sha256}")
        holders = tuple(
            r for r in self._catalog.all() if any(a.repository_id == r.id for a in found)
        )
        return FoundFile(found[0], holders)

    def find_proxied(
        self,
        sha256: str,
        filename: str,
        metadata: bool,
        may_read: Callable[[Repository], bool],
    ) -> ProxiedFile | None:
        """A file with these bytes and this name that a PyPI proxy the caller may read
        (through any repository, `may_read`) lists (the `.metadata` file of it, for
        `metadata`), or None. The proxy's cached page is asked first; where it has none
        (pruned since a page listing the file was served) the upstream is asked again."""
        name = project_of(filename)
        if name is None:
            return None
        proxies = [
            r for r in self._catalog.all(Format.PYPI) if r.kind is RepoKind.PROXY and may_read(r)
        ]
        if not metadata:
            kept = {f.repository_id: f for f in self.proxy.cache.find_file(sha256, filename)}
            for repo in proxies:
                stored = kept.get(repo.id)
                if stored is not None and self.proxy.cache.still_stored(stored):
                    return ProxiedFile((repo,), _kept(stored))
        for fresh in (False, True):
            for repo in proxies:
                if fresh:
                    answer = self.proxy.project(repo, name)
                    files = answer.files
                else:
                    files = self.proxy.cached_project(repo, name)
                for file in files:
                    if file.filename != filename or file.sha256 != sha256:
                        continue
                    if metadata and not isinstance(file.core_metadata, str):
                        raise ArtifactNotFound(f"{filename!r} has no metadata file")
                    fetch = _proxied_fetch(self.proxy, repo, file, name, metadata)
                    return ProxiedFile((repo,), fetch)
        return None


@dataclass(frozen=True)
class ProxiedFile:
    """A file a proxy lists, maybe not fetched yet: `start` gives its stored copy, or the
    download from the upstream just begun (checked against its sha256 once read)."""

    holders: tuple[Repository, ...]
    start: Callable[[], StoredFile | Download]

    def fetch(self) -> StoredFile:
        """The stored copy, fetching it whole first if need be."""
        started = self.start()
        return started if isinstance(started, StoredFile) else started.finish()


def _kept(stored: StoredFile) -> Callable[[], StoredFile | Download]:
    return lambda: stored


def _proxied_fetch(
    proxy: PypiProxy, repo: Repository, file: RemoteFile, name: str, metadata: bool
) -> Callable[[], StoredFile | Download]:
    def start() -> StoredFile | Download:
        assert file.sha256 is not None
        if metadata:
            return proxy.metadata_file(repo, file, name)
        return proxy.cache.start_file(
            repo, url=file.url, sha256=file.sha256, filename=file.filename, project=name
        )

    return start


def _nothing_shown(repo: Repository, name: str, proxied: list[Proxied]) -> str:
    """Why an order with proxies shows no file of `name`: none anywhere, or every one an
    upstream lists held back by a cooldown (which a bare "no project" would hide)."""
    held = [
        proxy for proxy, answer, shown in proxied if answer.found and answer.files and not shown
    ]
    if not held:
        return f"there is no project {name!r} in {repo.name!r}"
    return (
        f"every file of {name!r} that {held[0].qualified_name} has upstream is newer than a"
        f" cooldown (min-age or exclude-newer) of {repo.qualified_name} or that proxy lets"
        " through; an urgent fix can be exempted: add the name to the repository's"
        " --cooldown-exempt list (`packhouse repo update NAME --cooldown-exempt a,b`)"
    )


def _page_files(read: ProjectRead) -> tuple[list[simple.SimpleFile], list[str], int]:
    """The files a page shows (the first repository to hold a filename wins) sorted by
    version then filename, its versions, its last serial."""
    seen: set[str] = set()
    keyed: list[tuple[tuple[SortKey, str], simple.SimpleFile]] = []
    versions: set[str] = set()
    last_serial = 0
    for project, files in read:
        last_serial = max(last_serial, project.last_serial)
        for version, file in files:
            if file.filename in seen:
                continue
            seen.add(file.filename)
            versions.add(version)
            keyed.append(((sort_key(version), file.filename), file))
    keyed.sort(key=lambda k: k[0])
    return [k[1] for k in keyed], sorted(versions, key=version_order), last_serial


def _releases(files: Sequence[Artifact], base_url: str) -> list[jsonapi.JsonRelease]:
    """One release per PEP 440 version, named as its first file in page order wrote it.
    Uploads store a file of an equal version under the release's text
    (services/pypi_releases.py); files stored before that rule (`1.0` and `1.0.0`) are
    shown as one release too."""
    releases: dict[object, tuple[str, list[Artifact]]] = {}
    for a in files:
        releases.setdefault(version_key(a.version), (a.version, []))[1].append(a)
    by_version = dict(releases.values())
    return [
        jsonapi.JsonRelease(
            version=v,
            metadata=core_metadata(arts[0].metadata),
            files=[json_file(a, base_url) for a in arts],
        )
        for v, arts in sorted(by_version.items(), key=lambda kv: version_key(kv[0]))
    ]


Proxied = tuple[Repository, ProxyPage, list[tuple[str, simple.SimpleFile]]]


def _proxied_stamp(
    ids: tuple[int, ...], serials: dict[int, int], proxied: list[Proxied]
) -> tuple[object, ...]:
    """What a page of an order with proxies depends on: the order, the project's serials
    and each proxy's answer (its digest, whether stale, how many files it shows)."""
    return (
        ids,
        tuple(sorted(serials.items())),
        tuple((p.id, a.digest, a.stale, len(shown)) for p, a, shown in proxied),
    )


def _with_proxied(
    releases: list[jsonapi.JsonRelease],
    shown: Sequence[tuple[str, simple.SimpleFile]],
    base_url: str,
) -> list[jsonapi.JsonRelease]:
    """The hosted releases with the files proxies show added (a filename already held
    keeps the first holder's file). Proxied releases carry no core metadata: it is in the
    file's `.metadata`, not fetched for this."""
    by_version = {r.version: list(r.files) for r in releases}
    metadata = {r.version: r.metadata for r in releases}
    held = {f.filename for r in releases for f in r.files}
    for version, file in shown:
        if file.filename in held or file.sha256 is None:  # no digest until fetched
            continue
        held.add(file.filename)
        by_version.setdefault(version, []).append(
            jsonapi.JsonFile(
                filename=file.filename,
                url=f"{base_url}/files/{file.sha256}/{file.filename}",
                size=file.size,
                sha256=file.sha256,
                requires_python=file.requires_python,
                upload_time=file.upload_time,
                yanked=file.yanked is not None,
                yanked_reason=file.yanked or None,
            )
        )
    return [
        jsonapi.JsonRelease(version=v, files=files, metadata=metadata.get(v))
        for v, files in sorted(by_version.items(), key=lambda kv: version_key(kv[0]))
    ]
