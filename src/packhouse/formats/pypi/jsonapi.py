"""PyPI's JSON API: `/pypi/<project>/json` and `/pypi/<project>/<version>/json`.

The shape follows pypi.org's (https://docs.pypi.org/api/json/), so tools written against it
(pip-audit, poetry, renovate, dependabot, ...) work here. The service fills the small input
model below from the database; nothing here reads files, the clock or the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from packaging.version import InvalidVersion, Version

from packhouse.errors import NotFound, ProjectNotFound
from packhouse.formats.pypi.metadata import CoreMetadata

__all__ = [
    "JsonFile",
    "JsonProject",
    "JsonRelease",
    "document_joined",
    "file_json",
    "guess_packagetype",
    "latest_index",
    "latest_release",
    "project_json",
    "release_json",
]


@dataclass(frozen=True, slots=True)
class JsonFile:
    """One file of a release, as the service knows it."""

    filename: str
    url: str
    size: int
    sha256: str
    upload_time: datetime | None  # UTC (a naive time is taken as UTC); None: not known
    requires_python: str | None = None
    md5: str | None = None
    blake2b_256: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    comment_text: str = ""
    # PyPI's `packagetype` / `python_version`; None = derived from the filename.
    packagetype: str | None = None
    python_version: str | None = None


@dataclass(frozen=True, slots=True)
class JsonRelease:
    """One version of a project with its files and, if known, its core metadata."""

    version: str
    files: Sequence[JsonFile]
    metadata: CoreMetadata | None = None  # from one of its files; None for e.g. a bare proxy

    @property
    def yanked(self) -> bool:
        """A release counts as yanked when it has files and every one is yanked."""
        return bool(self.files) and all(f.yanked for f in self.files)

    @property
    def yanked_reason(self) -> str | None:
        if not self.yanked:
            return None
        return next((f.yanked_reason for f in self.files if f.yanked_reason), None)


@dataclass(frozen=True, slots=True)
class JsonProject:
    """A project and all its releases."""

    name: str  # as written (shown when a release has no metadata)
    releases: Sequence[JsonRelease]
    last_serial: int
    project_page_url: str  # the web UI page of the project; release pages are below it


def guess_packagetype(filename: str) -> tuple[str, str]:
    """(packagetype, python_version) as PyPI reports them, from a filename.

    Files from an upstream may be any legacy kind, so this never raises.
    """
    lower = filename.lower()
    if lower.endswith(".whl"):
        parts = filename[:-4].split("-")
        return "bdist_wheel", parts[-3] if len(parts) >= 5 else "any"
    if lower.endswith((".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")):
        return "sdist", "source"
    if lower.endswith(".egg"):
        parts = filename[:-4].split("-")
        return "bdist_egg", parts[2] if len(parts) >= 3 else "any"
    if lower.endswith(".exe"):
        return "bdist_wininst", "any"
    if lower.endswith(".msi"):
        return "bdist_msi", "any"
    if lower.endswith(".rpm"):
        return "bdist_rpm", "any"
    return "unknown", "any"


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


def _is_prerelease(text: str) -> bool:
    try:
        return Version(text).is_prerelease
    except InvalidVersion:
        return False


def latest_release(releases: Sequence[JsonRelease]) -> JsonRelease | None:
    """The version pypi.org shows: the highest non-yanked final release, else the highest
    non-yanked pre-release, else the highest yanked one. Releases without files count only
    when no release has any."""
    with_files = [r for r in releases if r.files] or list(releases)
    if not with_files:
        return None

    def rank(release: JsonRelease) -> tuple[int, tuple[int, Version | str]]:
        tier = 0 if release.yanked else 1 if _is_prerelease(release.version) else 2
        return tier, _version_key(release.version)

    return max(with_files, key=rank)


def latest_index(releases: Sequence[tuple[str, bool]]) -> int:
    """`latest_release` of (version, yanked) pairs in ascending version order, each with
    files: its index. Versions are parsed from the newest down only until one decides."""
    prerelease = yanked = None
    for i in range(len(releases) - 1, -1, -1):
        version, is_yanked = releases[i]
        if is_yanked:
            yanked = i if yanked is None else yanked
        elif not _is_prerelease(version):
            return i
        elif prerelease is None:
            prerelease = i
    found = prerelease if prerelease is not None else yanked
    if found is None:
        raise ValueError("no releases")
    return found


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _file(file: JsonFile) -> dict[str, Any]:
    packagetype, python_version = guess_packagetype(file.filename)
    when = None if file.upload_time is None else _utc(file.upload_time)
    return {
        "comment_text": file.comment_text,
        "digests": {
            "blake2b_256": file.blake2b_256,
            "md5": file.md5,
            "sha256": file.sha256,
        },
        "downloads": -1,  # pypi.org sends -1 too: download counts live elsewhere
        "filename": file.filename,
        "has_sig": False,
        "md5_digest": file.md5,
        "packagetype": file.packagetype or packagetype,
        "python_version": file.python_version or python_version,
        "requires_python": file.requires_python,
        "size": file.size,
        "upload_time": None if when is None else when.strftime("%Y-%m-%dT%H:%M:%S"),
        "upload_time_iso_8601": (
            None if when is None else when.isoformat(timespec="microseconds").replace("+00:00", "Z")
        ),
        "url": file.url,
        "yanked": file.yanked,
        "yanked_reason": file.yanked_reason if file.yanked else None,
    }


def _or_none(items: Sequence[str]) -> list[str] | None:
    """pypi.org sends null, not [], for these list fields when empty."""
    return list(items) if items else None


def _info(project: JsonProject, release: JsonRelease) -> dict[str, Any]:
    return _info_of(
        project.name,
        project.project_page_url,
        release.version,
        release.metadata,
        release.yanked,
        release.yanked_reason,
    )


def _info_of(
    name: str,
    project_page_url: str,
    version: str,
    meta: CoreMetadata | None,
    yanked: bool,
    yanked_reason: str | None,
) -> dict[str, Any]:
    base = project_page_url.rstrip("/")
    info: dict[str, Any] = {
        "author": None,
        "author_email": None,
        "bugtrack_url": None,
        "classifiers": [],
        "description": None,
        "description_content_type": None,
        "docs_url": None,
        "download_url": None,
        "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},
        "dynamic": None,
        "home_page": None,
        "keywords": None,
        "license": None,
        "license_expression": None,
        "license_files": None,
        "maintainer": None,
        "maintainer_email": None,
        "name": name,
        "package_url": f"{base}/",
        "platform": None,
        "project_url": f"{base}/",
        "project_urls": None,
        "provides_extra": None,
        "release_url": f"{base}/{version}/",
        "requires_dist": None,
        "requires_python": None,
        "summary": None,
        "version": version,
        "yanked": yanked,
        "yanked_reason": yanked_reason,
    }
    if meta is None:
        return info
    info.update(
        author=meta.author,
        author_email=meta.author_email,
        classifiers=list(meta.classifiers),
        description=meta.description,
        description_content_type=meta.description_content_type,
        download_url=meta.download_url,
        dynamic=_or_none(meta.dynamic),
        home_page=meta.home_page,
        keywords=", ".join(meta.keywords) if meta.keywords else None,
        license=meta.license,
        license_expression=meta.license_expression,
        license_files=_or_none(meta.license_files),
        maintainer=meta.maintainer,
        maintainer_email=meta.maintainer_email,
        name=meta.name,
        platform=", ".join(meta.platforms) if meta.platforms else None,
        project_urls=dict(meta.project_urls) or None,
        provides_extra=_or_none(meta.provides_extra),
        requires_dist=_or_none(meta.requires_dist),
        requires_python=meta.requires_python,
        summary=meta.summary,
    )
    return info


def _document(project: JsonProject, release: JsonRelease, *, with_releases: bool) -> bytes:
    doc: dict[str, Any] = {"info": _info(project, release), "last_serial": project.last_serial}
    if with_releases:
        doc["releases"] = {
            r.version: [_file(f) for f in r.files]
            for r in sorted(project.releases, key=lambda r: _version_key(r.version))
        }
    doc["urls"] = [_file(f) for f in release.files]
    doc["vulnerabilities"] = []  # Packhouse has no advisory database; the key keeps clients happy
    return orjson.dumps(doc)


def file_json(file: JsonFile) -> bytes:
    """One file's object in the documents' `releases` and `urls`, for `document_joined`,
    rendered with its `url` the path below the server (`/files/...`)."""
    # Copied: orjson's result keeps its whole (4 kB) buffer allocated, 10x a file's object.
    return bytes(memoryview(orjson.dumps(_file(file))))


# A `file_json` part's URL, there once: a value's own quotes are escaped, and no other key
# of `_file` is `url`. (Not so in `info`, whose `project_urls` labels are anyone's.)
_PATH = b'"url":"/files/'


def document_joined(
    project: JsonProject,
    release: JsonRelease,
    releases: Sequence[tuple[str, Sequence[bytes]]] | None,
    urls: Sequence[bytes],
    origin: str,
) -> bytes:
    """`project_json` (with `releases`: each version and its files' `file_json` parts, in
    version order) or `release_json` (None) of `release`, from parts: the same keys in the
    same order, and orjson writes no whitespace, so the same bytes, once `origin` (the
    server's address, as `f"{origin}/files/..."` in a JsonFile) is put before each part's
    URL. `release.files` is used only for its yank state; `project.releases` not at all."""
    files: list[bytes] = []
    if releases is not None:
        files.append(b',"releases":{')
        files.append(
            b",".join(
                b"".join((orjson.dumps(version), b":[", b",".join(parts), b"]"))
                for version, parts in releases
            )
        )
        files.append(b"}")
    files += [b',"urls":[', b",".join(urls), b"]"]
    located = b'"url":"' + orjson.dumps(origin)[1:-1] + b"/files/"
    return b"".join(
        (
            b'{"info":',
            orjson.dumps(_info(project, release)),
            b',"last_serial":',
            orjson.dumps(project.last_serial),
            b"".join(files).replace(_PATH, located),
            b',"vulnerabilities":[]}',
        )
    )


def project_json(project: JsonProject) -> bytes:
    """`/pypi/<project>/json`: the latest release's info, every release's files."""
    release = latest_release(project.releases)
    if release is None:
        raise ProjectNotFound(f"project {project.name!r} has no releases")
    return _document(project, release, with_releases=True)


def release_json(project: JsonProject, version: str) -> bytes:
    """`/pypi/<project>/<version>/json`: one release's info and files (no `releases` key).

    The version is matched by PEP 440 equality, so `1.0` finds a release written `1.0.0`.
    """
    try:
        wanted: Version | str = Version(version)
    except InvalidVersion:
        wanted = version
    for release in project.releases:
        try:
            have: Version | str = Version(release.version)
        except InvalidVersion:
            have = release.version
        if have == wanted:
            return _document(project, release, with_releases=False)
    raise NotFound(f"project {project.name!r} has no release {version!r}")
