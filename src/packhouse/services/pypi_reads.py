"""Reading PyPI repositories: simple pages, the JSON API, files, all through the page cache."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from sqlalchemy import String, select, type_coerce

from packhouse.db import artifact_store, repository_store
from packhouse.db.artifact_store import Artifact
from packhouse.db.repository_store import Repository
from packhouse.db.schema import artifacts
from packhouse.errors import ArtifactNotFound, ProjectNotFound
from packhouse.formats.pypi import jsonapi, simple
from packhouse.formats.pypi.metadata import CoreMetadata
from packhouse.services.catalog import Catalog
from packhouse.services.context import Context
from packhouse.services.pages import Page

JSON_TYPE = "application/json"


@dataclass(frozen=True)
class FoundFile:
    artifact: Artifact
    holders: tuple[Repository, ...]  # the repositories that hold it


@lru_cache(maxsize=32768)
def _version_key(text: str) -> tuple[int, Version | str]:
    """Sort key of a version string. Parsing is the slowest part of rendering a big
    project's page, and a page is rendered again after each upload with the same versions
    plus one, so parsed versions are kept (a few hundred bytes each)."""
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


_PLAIN_RELEASE = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_Key = tuple[Any, ...]


@lru_cache(maxsize=65536)
def _sort_key(text: str) -> _Key:
    """A sort key equal to `_version_key`'s order (PEP 440, versions that do not parse first,
    by text) made of ints and strings only, so sorting compares in C, not with Python-level
    `Version.__lt__`/`__eq__`; plain releases ("1.2.3") are keyed without parsing. It is
    packaging's comparison key (`_cmpkey`) with its infinities written as -1/0/1 tags."""
    if _PLAIN_RELEASE.fullmatch(text):
        release = tuple(int(p) for p in text.split("."))
        epoch, pre, post, dev, local = 0, None, None, None, None
    else:
        try:
            v = Version(text)
        except InvalidVersion:
            return (0, text)
        release, epoch, pre, post, dev, local = v.release, v.epoch, v.pre, v.post, v.dev, v.local
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    if release == (0,):
        release = ()
    pre_key: _Key
    if pre is None and post is None and dev is not None:
        pre_key = (-1,)
    elif pre is None:
        pre_key = (1,)
    else:
        pre_key = (0, pre[0], pre[1])
    post_key: _Key = (-1,) if post is None else (0, post)
    dev_key: _Key = (1,) if dev is None else (0, dev)
    local_key: _Key = (
        (-1,)
        if local is None
        else (0, tuple((1, int(p)) if p.isdigit() else (0, p) for p in local.split(".")))
    )
    return (1, epoch, release, pre_key, post_key, dev_key, local_key)


# What a simple page shows of a file; not the stored metadata or conda record.
_SIMPLE_COLUMNS = (
    artifacts.c.filename,
    artifacts.c.version,
    artifacts.c.sha256,
    artifacts.c.requires_python,
    artifacts.c.yanked,
    artifacts.c.yanked_reason,
    artifacts.c.metadata_sha256,
    artifacts.c.size,
    # As the driver gives it: SQLAlchemy's own parsing of SQLite's text timestamps (a regex
    # per row) was most of the time to render a page of 5,000 files; see _timestamp.
    type_coerce(artifacts.c.upload_time, String).label("upload_time"),
)


def _timestamp(value: datetime | str) -> datetime:
    """An upload time as read by _SIMPLE_COLUMNS (text on SQLite), in UTC."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class PypiReader:
    def __init__(self, ctx: Context, catalog: Catalog) -> None:
        self._ctx = ctx
        self._catalog = catalog

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
        ids = tuple(r.id for r in order)

        def stamp() -> tuple[object, ...]:
            return self._project_stamp(ids, name)

        def render() -> Page:
            files, versions, last_serial = self._simple_files(order, name)
            if not files:
                raise ProjectNotFound(f"there is no project {project!r} in {repo.name!r}")
            page = simple.ProjectPage(
                name=name, files=files, versions=versions, last_serial=last_serial
            )
            if kind == "json":
                return Page.of(simple.project_json(page), simple.JSON_V1, last_serial)
            return Page.of(simple.project_html(page), simple.TEXT_HTML, last_serial)

        return self._ctx.pages.get(("pypi-project", repo.id, name, kind), serial, stamp, render)

    def _project_stamp(self, ids: tuple[int, ...], name: str) -> tuple[object, ...]:
        """What a project's pages depend on: the resolution order and the project's serial
        in each repository of it."""
        with self._ctx.db.read() as conn:
            serials = repository_store.project_serials(conn, ids, name)
        return (ids, tuple(sorted(serials.items())))

    def _simple_files(
        self, order: Sequence[Repository], name: str
    ) -> tuple[list[simple.SimpleFile], list[str], int]:
        """What `_files` finds, as the simple page shows it (read with only the columns it
        needs): the files sorted by version then filename, the versions, the last serial."""
        seen: set[str] = set()
        keyed: list[tuple[str, str, simple.SimpleFile]] = []
        versions: set[str] = set()
        last_serial = 0
        with self._ctx.db.read() as conn:
            for repo in order:
                project = repository_store.get_project(conn, repo.id, name)
                if project is None:
                    continue
                last_serial = max(last_serial, project.last_serial)
                rows = conn.execute(
                    select(*_SIMPLE_COLUMNS)
                    .where(artifacts.c.project_id == project.id, artifacts.c.deleted.is_(False))
                    .order_by(artifacts.c.id)
                )
                for row in rows:
                    filename = row.filename
                    if filename in seen:
                        continue
                    seen.add(filename)
                    versions.add(row.version)
                    file = simple.SimpleFile(
                        filename=filename,
                        url=f"../../../../files/{row.sha256}/{filename}",
                        sha256=row.sha256,
                        requires_python=row.requires_python,
                        yanked=(row.yanked_reason or "") if row.yanked else None,
                        metadata_sha256=row.metadata_sha256,
                        size=row.size,
                        upload_time=_timestamp(row.upload_time),
                    )
                    keyed.append((row.version, filename, file))
        keyed.sort(key=lambda k: (_sort_key(k[0]), k[1]))
        return [k[2] for k in keyed], sorted(versions, key=_sort_key), last_serial

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
        files.sort(key=lambda a: (_version_key(a.version), a.filename))
        return files, last_serial

    # -- the project list -----------------------------------------------------------------

    def index_page(self, repo: Repository, kind: Literal["html", "json"]) -> Page:
        serial = self._ctx.db.watcher.current()
        order = self._catalog.order(repo, serial)
        ids = tuple(r.id for r in order)

        def stamp() -> tuple[object, ...]:
            with self._ctx.db.read() as conn:
                return (ids, tuple(sorted(repository_store.repo_serials(conn, ids).items())))

        def render() -> Page:
            names: set[str] = set()
            last_serial = 0
            with self._ctx.db.read() as conn:
                for r, s in repository_store.repo_serials(conn, ids).items():
                    last_serial = max(last_serial, s)
                    names.update(n for n, _ in repository_store.project_names(conn, r))
            index = simple.ProjectIndex(projects=sorted(names), last_serial=last_serial)
            if kind == "json":
                return Page.of(simple.index_json(index), simple.JSON_V1, last_serial)
            return Page.of(simple.index_html(index), simple.TEXT_HTML, last_serial)

        return self._ctx.pages.get(("pypi-index", repo.id, kind), serial, stamp, render)

    # -- PyPI's JSON API ------------------------------------------------------------------

    def json_api(self, repo: Repository, project: str, version: str | None, base_url: str) -> Page:
        name = canonicalize_name(project)
        serial = self._ctx.db.watcher.current()
        order = self._catalog.order(repo, serial)
        ids = tuple(r.id for r in order)

        def stamp() -> tuple[object, ...]:
            return self._project_stamp(ids, name)

        def render() -> Page:
            files, last_serial = self._files(order, name)
            if not files:
                raise ProjectNotFound(f"there is no project {project!r} in {repo.name!r}")
            doc = jsonapi.JsonProject(
                name=files[-1].project,
                releases=_releases(files, base_url),
                last_serial=last_serial,
                project_page_url=f"{base_url}/ui/pypi/{repo.name}/{name}/",
            )
            if version is None:
                body = jsonapi.project_json(doc)
            else:
                body = jsonapi.release_json(doc, version)
            return Page.of(body, JSON_TYPE, last_serial)

        key = ("pypi-json", repo.id, name, version, base_url)
        return self._ctx.pages.get(key, serial, stamp, render)

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


_METADATA_FIELDS = {f.name for f in dataclasses.fields(CoreMetadata)}


def _core_metadata(stored: dict[str, Any] | None) -> CoreMetadata | None:
    """The stored JSON form back into the model (fields added later default)."""
    if not stored:
        return None
    return CoreMetadata(**{k: v for k, v in stored.items() if k in _METADATA_FIELDS})


def _releases(files: Sequence[Artifact], base_url: str) -> list[jsonapi.JsonRelease]:
    by_version: dict[str, list[Artifact]] = {}
    for a in files:
        by_version.setdefault(a.version, []).append(a)
    return [
        jsonapi.JsonRelease(
            version=v,
            metadata=_core_metadata(arts[0].metadata),
            files=[
                jsonapi.JsonFile(
                    filename=a.filename,
                    url=f"{base_url}/files/{a.sha256}/{a.filename}",
                    size=a.size,
                    md5=a.md5,
                    sha256=a.sha256,
                    blake2b_256=a.blake2b_256,
                    requires_python=a.requires_python,
                    upload_time=a.upload_time,
                    yanked=a.yanked,
                    yanked_reason=a.yanked_reason,
                )
                for a in arts
            ],
        )
        for v, arts in sorted(by_version.items(), key=lambda kv: _version_key(kv[0]))
    ]
