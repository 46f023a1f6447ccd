"""Reading PyPI repositories: simple pages, the JSON API, files, all through the page cache."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from packhouse.db import artifact_store, repository_store
from packhouse.db.artifact_store import Artifact
from packhouse.db.repository_store import Repository
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


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


class PypiReader:
    def __init__(self, ctx: Context, catalog: Catalog) -> None:
        self._ctx = ctx
        self._catalog = catalog

    # -- project pages --------------------------------------------------------------------

    def cached_project_page(
        self, repo: Repository, project: str, kind: Literal["html", "json"]
    ) -> Page | None:
        """The page if it is known good at the newest serial: no database, no rendering."""
        serial = self._ctx.db.watcher.current()
        return self._ctx.pages.fresh(("pypi-project", repo.id, project, kind), serial)

    def project_page(self, repo: Repository, project: str, kind: Literal["html", "json"]) -> Page:
        name = canonicalize_name(project)
        serial = self._ctx.db.watcher.current()
        order = self._catalog.order(repo, serial)
        ids = tuple(r.id for r in order)

        def stamp() -> tuple[object, ...]:
            with self._ctx.db.read() as conn:
                serials = repository_store.project_serials(conn, ids, name)
            return (ids, tuple(sorted(serials.items())))

        def render() -> Page:
            files, last_serial = self._files(order, name)
            if not files:
                raise ProjectNotFound(f"there is no project {project!r} in {repo.name!r}")
            page = simple.ProjectPage(
                name=name,
                files=[_simple_file(a) for a in files],
                versions=sorted({a.version for a in files}, key=_version_key),
                last_serial=last_serial,
            )
            if kind == "json":
                return Page.of(simple.project_json(page), simple.JSON_V1, last_serial)
            return Page.of(simple.project_html(page), simple.TEXT_HTML, last_serial)

        return self._ctx.pages.get(("pypi-project", repo.id, name, kind), serial, stamp, render)

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
            with self._ctx.db.read() as conn:
                serials = repository_store.project_serials(conn, ids, name)
            return (ids, tuple(sorted(serials.items())))

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


def _simple_file(a: Artifact) -> simple.SimpleFile:
    return simple.SimpleFile(
        filename=a.filename,
        url=f"../../../../files/{a.sha256}/{a.filename}",
        sha256=a.sha256,
        requires_python=a.requires_python,
        yanked=(a.yanked_reason or "") if a.yanked else None,
        metadata_sha256=a.metadata_sha256,
        size=a.size,
        upload_time=a.upload_time,
    )


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
