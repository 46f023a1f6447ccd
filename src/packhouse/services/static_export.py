"""`packhouse export --static DIR`: the server's pages and files as a plain directory tree
that pip, uv, conda, pixi and rattler read through `file://` or any static web server.

The tree has the server's URL layout, so every page is the very bytes the server renders
(the same readers and formats/ renderers, one code) and every relative link in it resolves:

    DIR/pypi/<repo>/simple/index.html, index.json          PEP 503 / PEP 691 project list
    DIR/pypi/<repo>/simple/<project>/index.html, index.json  a project's files
    DIR/files/<sha256>/<filename>[.metadata]               files and PEP 658 metadata
    DIR/conda/<repo>/channeldata.json, index.html
    DIR/conda/<repo>/<subdir>/repodata.json (+ .zst, .bz2), repodata_from_packages.json,
        current_repodata.json, run_exports.json, repodata_shards.msgpack.zst,
        shards/<sha256>.msgpack.zst (CEP 16), index.html, the packages

pip and uv read `index.html` for a `file://` directory URL; `index.json` is the PEP 691
form for a web server that picks it by the Accept header (docs/export.md has an nginx
example). A repository that reads through a proxy is skipped (its pages would ask the
upstream, and its files are not all here); hosted repositories and groups of them are
written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgpack
import orjson
import zstandard

from packhouse.db.artifact_store import Artifact
from packhouse.db.repository_store import Repository
from packhouse.errors import InvalidInput, RepositoryNotFound
from packhouse.services.conda_reads import INDEX_FILES
from packhouse.services.export import Progress, copy_blob, no_progress
from packhouse.services.pages import Page
from packhouse.services.sources import proxies_of
from packhouse.types import Format, Sha256
from packhouse.wiring import Services

_PAGE_KINDS: tuple[Literal["html", "json"], ...] = ("html", "json")
_PAGE_FILE = {"html": "index.html", "json": "index.json"}
FILES_PREFIX = "../../../../files/"  # how a project page links its files (pypi_parts.py)


@dataclass
class StaticReport:
    repositories: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pages: int = 0
    files: int = 0

    def summary(self) -> str:
        text = (
            f"{len(self.repositories)} repositories ({', '.join(self.repositories) or 'none'}),"
            f" {self.pages} index files, {self.files} package files"
        )
        if self.skipped:
            text += "; skipped " + "; ".join(self.skipped)
        return text


def export_static(
    svc: Services, directory: Path, wanted: Iterable[str], progress: Progress = no_progress
) -> StaticReport:
    """Write the static tree of the repositories named in `wanted` (pypi/NAME, conda/NAME
    or NAME for both formats; empty: every repository) into a new or empty directory."""
    repos = _chosen(svc, list(wanted))
    if directory.exists() and any(directory.iterdir()):
        raise InvalidInput(
            f"{directory} is not empty: write a static tree into a new directory (and swap"
            " it in for the old one, so readers never see half a tree)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    report = StaticReport()
    for i, repo in enumerate(repos):
        progress("writing static tree", i, len(repos))
        order = svc.catalog.order(repo)
        if proxies_of(order):
            report.skipped.append(f"{repo.qualified_name} (reads through a proxy)")
            continue
        if repo.format is Format.PYPI:
            _pypi_repo(svc, repo, directory, report)
        else:
            _conda_repo(svc, repo, directory, report)
        report.repositories.append(repo.qualified_name)
    progress("writing static tree", len(repos), len(repos))
    os.sync()
    return report


def _chosen(svc: Services, wanted: list[str]) -> list[Repository]:
    every = sorted(svc.catalog.all(), key=lambda r: (r.format.value, r.name))
    if not wanted:
        return every
    chosen: list[Repository] = []
    for name in wanted:
        fmt, _, bare = name.rpartition("/")
        found = [r for r in every if r.name == bare and (not fmt or r.format.value == fmt)]
        if not found:
            raise RepositoryNotFound(f"there is no repository {name!r} to export")
        chosen += [r for r in found if r not in chosen]
    return chosen


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- PyPI ---------------------------------------------------------------------------------


def _pypi_repo(svc: Services, repo: Repository, root: Path, report: StaticReport) -> None:
    simple = root / "pypi" / repo.name / "simple"
    index: Page | None = None
    for kind in _PAGE_KINDS:
        index = svc.pypi.index_page(repo, kind)
        _write(simple / _PAGE_FILE[kind], index.body)
        report.pages += 1
    assert index is not None
    for entry in orjson.loads(index.body)["projects"]:
        name = entry["name"]
        page: Page | None = None
        for kind in _PAGE_KINDS:
            page = svc.pypi.project_page(repo, name, kind)
            _write(simple / name / _PAGE_FILE[kind], page.body)
            report.pages += 1
        assert page is not None
        for file in orjson.loads(page.body)["files"]:
            report.files += _pypi_file(svc, root, file)


def _pypi_file(svc: Services, root: Path, file: dict[str, Any]) -> int:
    url: str = file["url"]
    if not url.startswith(FILES_PREFIX):
        raise InvalidInput(f"a page links {url!r}, outside the server's files")
    path = root / "files" / url.removeprefix(FILES_PREFIX)
    if path.exists():
        return 0  # the same file in two repositories of the export
    sha = Sha256(file["hashes"]["sha256"])
    copy_blob(svc.ctx.blobs, sha, path, what=file["filename"])
    core = file.get("core-metadata")
    if isinstance(core, dict):
        meta = path.with_name(path.name + ".metadata")
        copy_blob(svc.ctx.blobs, Sha256(core["sha256"]), meta, what=meta.name)
    return 1


# -- conda --------------------------------------------------------------------------------


def _conda_repo(svc: Services, repo: Repository, root: Path, report: StaticReport) -> None:
    channel = root / "conda" / repo.name
    channeldata = svc.conda.channeldata(repo)
    body = channeldata.read()
    _write(channel / "channeldata.json", body)
    _write(channel / "index.html", svc.conda.channel_index(repo).read())
    report.pages += 2
    for subdir in orjson.loads(body).get("subdirs", ["noarch"]):
        target = channel / subdir
        for kind in sorted(INDEX_FILES):
            page = svc.conda.page(repo, subdir, kind)
            assert isinstance(page, Page)  # orders with proxies were skipped
            if kind == "patch_instructions.json" and page.body == b"{}":
                continue
            _write(target / kind, page.body)
            report.pages += 1
            if kind == "repodata_shards.msgpack.zst":
                report.pages += _shards(svc, repo, subdir, page.body, target)
        listed = svc.conda.page(repo, subdir, "repodata_from_packages.json")
        assert isinstance(listed, Page)
        packages = orjson.loads(listed.body)
        for section in ("packages", "packages.conda"):
            for filename in packages.get(section, {}):
                found = svc.conda.find_package(repo, subdir, filename)
                assert isinstance(found, Artifact)
                copy_blob(svc.ctx.blobs, Sha256(found.sha256), target / filename, what=filename)
                report.files += 1


def _shards(svc: Services, repo: Repository, subdir: str, index: bytes, target: Path) -> int:
    """Each CEP 16 shard the index names, under shards/ (its `shards_base_url`)."""
    raw = zstandard.ZstdDecompressor().decompress(index, max_output_size=1 << 30)
    digests: dict[str, bytes] = msgpack.unpackb(raw, raw=False)["shards"]
    for digest in digests.values():
        hex_digest = digest.hex()
        data = svc.conda.shard(repo, subdir, hex_digest)
        _write(target / "shards" / f"{hex_digest}.msgpack.zst", data)
    return len(digests)
