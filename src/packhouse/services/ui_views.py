"""What the web UI shows of one PyPI project or conda package, read through the same
services the clients use (the JSON API's document; channeldata.json and CEP 16 shards), so
a page shows exactly what pip or conda would get: the resolution order, the
dependency-confusion rule and cooldowns included.

Descriptions are rendered with readme-renderer (the renderer pypi.org uses, which cleans
the HTML it makes: no scripts, no event attributes, no styles) and kept by a hash of their
text, so a page view of an unchanged project renders none again.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgpack
import orjson
import zstandard

from packhouse.db.repository_store import Repository
from packhouse.errors import NotFound, ProjectNotFound
from packhouse.formats.conda.version import version_key as conda_version_key
from packhouse.services.conda_proxied import FilePage
from packhouse.services.conda_reads import CondaReader
from packhouse.services.pages import Page
from packhouse.services.pypi_parts import version_key
from packhouse.services.pypi_reads import PypiReader

SHARDS_INDEX = "repodata_shards.msgpack.zst"
MAX_RENDERED = 512  # descriptions kept rendered
MAX_DESCRIPTION = 512 * 1024  # longer descriptions are shown as plain text, cut


# -- PyPI -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileView:
    filename: str
    url: str
    size: int
    sha256: str
    blake2b_256: str | None
    md5: str | None
    uploaded: datetime | None
    packagetype: str
    requires_python: str | None
    yanked: bool
    yanked_reason: str | None


@dataclass(frozen=True, slots=True)
class ReleaseView:
    version: str
    files: tuple[FileView, ...]
    uploaded: datetime | None

    @property
    def yanked(self) -> bool:
        return bool(self.files) and all(f.yanked for f in self.files)


@dataclass(frozen=True)
class ProjectView:
    name: str  # as written
    normalized: str
    version: str  # the one shown
    latest: str
    summary: str
    description_html: str
    info: Mapping[str, Any]
    files: tuple[FileView, ...]  # of the shown version
    releases: tuple[ReleaseView, ...]  # newest first
    urls: tuple[tuple[str, str], ...]
    yanked_files: tuple[FileView, ...]  # every yanked file, with its reason
    stale: bool = False
    etag: str = ""  # of the JSON API document it was made from


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _file(doc: Mapping[str, Any]) -> FileView:
    digests = doc.get("digests") or {}
    return FileView(
        filename=doc["filename"],
        url=doc["url"],
        size=int(doc.get("size") or 0),
        sha256=digests.get("sha256") or "",
        blake2b_256=digests.get("blake2b_256"),
        md5=digests.get("md5"),
        uploaded=_when(doc.get("upload_time_iso_8601")),
        packagetype=doc.get("packagetype") or "",
        requires_python=doc.get("requires_python"),
        yanked=bool(doc.get("yanked")),
        yanked_reason=doc.get("yanked_reason"),
    )


class Descriptions:
    """Rendered descriptions by the sha256 of (content type, text), least recent dropped."""

    def __init__(self, size: int = MAX_RENDERED) -> None:
        self._size = size
        self._kept: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def render(self, text: str | None, content_type: str | None) -> str:
        if not text:
            return ""
        key = hashlib.sha256(f"{content_type}\0{text}".encode("utf-8", "replace")).digest()
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        html = render_description(text, content_type)
        with self._lock:
            self._kept[key] = html
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return html


def render_description(text: str, content_type: str | None) -> str:
    """Sanitised HTML for a description, as pypi.org renders it: Markdown (GFM or
    CommonMark), reStructuredText (also when no type is given), or plain text."""
    from readme_renderer import markdown, rst, txt

    if len(text) > MAX_DESCRIPTION:
        return str(txt.render(text[:MAX_DESCRIPTION] + "\n[cut: the description is too long]"))
    kind, _, params = (content_type or "text/x-rst").partition(";")
    kind = kind.strip().lower()
    if kind == "text/markdown":
        variant = "GFM"
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "variant" and value.strip():
                variant = value.strip()
        rendered = markdown.render(text, variant=variant)
    elif kind == "text/plain":
        rendered = txt.render(text)
    else:
        rendered = rst.render(text)
    if rendered is None:  # reStructuredText that does not parse: shown as text
        rendered = txt.render(text)
    return str(rendered)


def _urls(info: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    if info.get("home_page"):
        found.append(("Homepage", str(info["home_page"])))
    for label, url in (info.get("project_urls") or {}).items():
        found.append((str(label), str(url)))
    # only web links: a javascript: or data: URL in metadata is shown as text, never linked
    return tuple((label, url) for label, url in found if url.startswith(("https://", "http://")))


class ProjectViews:
    """Views made from the JSON API's cached document, kept while its ETag holds (a big
    project's document is parsed once per change, not per page view)."""

    def __init__(self, reader: PypiReader, size: int = 256) -> None:
        self._reader = reader
        self.descriptions = Descriptions()
        self._size = size
        self._kept: OrderedDict[tuple[object, ...], ProjectView] = OrderedDict()
        self._lock = threading.Lock()

    def project(
        self, repo: Repository, project: str, version: str | None, base_url: str
    ) -> ProjectView:
        page = self._reader.json_api(repo, project, None, base_url)
        key = (repo.id, project, version, base_url, page.etag)
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        view = self._make(repo, project, version, base_url, page)
        with self._lock:
            self._kept[key] = view
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return view

    def _make(
        self, repo: Repository, project: str, version: str | None, base_url: str, page: Page
    ) -> ProjectView:
        doc = orjson.loads(page.body)
        if version is not None:
            doc = {
                **doc,
                **orjson.loads(self._reader.json_api(repo, project, version, base_url).body),
            }
        info = doc["info"]
        releases = tuple(
            ReleaseView(v, files, min((f.uploaded for f in files if f.uploaded), default=None))
            for v, files in sorted(
                ((v, tuple(_file(f) for f in fs)) for v, fs in doc.get("releases", {}).items()),
                key=lambda kv: version_key(kv[0]),
                reverse=True,
            )
        )
        files = tuple(_file(f) for f in doc.get("urls", []))
        latest = orjson.loads(page.body)["info"]["version"] if version else info["version"]
        return ProjectView(
            name=info.get("name") or project,
            normalized=project,
            version=info["version"],
            latest=latest,
            summary=info.get("summary") or "",
            description_html=self.descriptions.render(
                info.get("description"), info.get("description_content_type")
            ),
            info=info,
            files=files,
            releases=releases,
            urls=_urls(info),
            yanked_files=tuple(f for r in releases for f in r.files if f.yanked),
            stale=page.stale,
            etag=page.etag,
        )


# -- conda ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildView:
    subdir: str
    filename: str
    version: str
    build: str
    build_number: int
    depends: tuple[str, ...]
    constrains: tuple[str, ...]
    size: int
    sha256: str
    uploaded: datetime | None
    license: str


@dataclass(frozen=True)
class PackageView:
    name: str
    latest: str
    summary: str
    description: str
    license: str
    links: tuple[tuple[str, str], ...]
    subdirs: tuple[str, ...]
    builds: Mapping[str, tuple[BuildView, ...]]  # subdir -> builds, newest first
    run_exports: Mapping[str, Any]  # version -> run_exports
    latest_depends: tuple[str, ...] = field(default=())


def _page_bytes(page: Page | FilePage) -> bytes:
    return page.body if isinstance(page, Page) else page.read()


def _seconds(timestamp: object) -> datetime | None:
    if not isinstance(timestamp, int) or timestamp <= 0:
        return None
    seconds = timestamp / 1000 if timestamp > 253402300799 else timestamp
    return datetime.fromtimestamp(seconds, UTC)


def _hex(value: object) -> str:
    return value.hex() if isinstance(value, bytes) else str(value or "")


class PackageViews:
    def __init__(self, reader: CondaReader) -> None:
        self._reader = reader

    def package(self, repo: Repository, name: str) -> PackageView:
        channeldata = orjson.loads(self._reader.channeldata(repo).read())
        entry = (channeldata.get("packages") or {}).get(name)
        if entry is None:
            raise ProjectNotFound(f"there is no package {name!r} in the channel {repo.name!r}")
        builds: dict[str, tuple[BuildView, ...]] = {}
        for subdir in entry.get("subdirs") or []:
            found = self._builds(repo, subdir, name)
            if found:
                builds[subdir] = found
        newest = max(
            (b for bs in builds.values() for b in bs),
            key=lambda b: (conda_version_key(b.version), b.build_number),
            default=None,
        )
        links = tuple(
            (label, str(entry[key]))
            for label, key in (("Home", "home"), ("Source", "dev_url"), ("Docs", "doc_url"))
            if str(entry.get(key) or "").startswith(("https://", "http://"))
        )
        return PackageView(
            name=name,
            latest=str(entry.get("version") or (newest.version if newest else "")),
            summary=str(entry.get("summary") or ""),
            description=str(entry.get("description") or ""),
            license=str(entry.get("license") or ""),
            links=links,
            subdirs=tuple(sorted(builds)),
            builds=builds,
            run_exports=entry.get("run_exports") or {},
            latest_depends=newest.depends if newest else (),
        )

    def _builds(self, repo: Repository, subdir: str, name: str) -> tuple[BuildView, ...]:
        index = _unpack(_page_bytes(self._reader.page(repo, subdir, SHARDS_INDEX)))
        digest = (index.get("shards") or {}).get(name)
        if not isinstance(digest, bytes):
            return ()
        try:
            shard = _unpack(self._reader.shard(repo, subdir, digest.hex()))
        except NotFound:
            return ()
        out = []
        for section in ("packages", "packages.conda"):
            for filename, record in (shard.get(section) or {}).items():
                out.append(_build(subdir, filename, record))
        # a .tar.bz2 with a .conda twin is the same build: show the .conda
        stems = {b.filename[:-6] for b in out if b.filename.endswith(".conda")}
        out = [b for b in out if not (b.filename.endswith(".tar.bz2") and b.filename[:-8] in stems)]
        out.sort(
            key=lambda b: (conda_version_key(b.version), b.build_number, b.build), reverse=True
        )
        return tuple(out)


def _build(subdir: str, filename: str, record: Mapping[str, Any]) -> BuildView:
    return BuildView(
        subdir=subdir,
        filename=filename,
        version=str(record.get("version", "")),
        build=str(record.get("build", "")),
        build_number=int(record.get("build_number") or 0),
        depends=tuple(str(d) for d in record.get("depends") or ()),
        constrains=tuple(str(d) for d in record.get("constrains") or ()),
        size=int(record.get("size") or 0),
        sha256=_hex(record.get("sha256")),
        uploaded=_seconds(record.get("timestamp")),
        license=str(record.get("license") or ""),
    )


def _unpack(data: bytes) -> dict[str, Any]:
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    return value if isinstance(value, dict) else {}


def versions_newest_first(versions: Sequence[str]) -> list[str]:
    return sorted(versions, key=conda_version_key, reverse=True)
