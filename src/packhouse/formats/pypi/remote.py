"""Reading an upstream's Simple API project page: PEP 691 JSON or PEP 503 HTML.

The reverse of `simple.py` (pip's `Link.from_json` and `Link.from_element` do the same):
bytes an upstream sent, in, `RemoteFile`s out, in the same vocabulary as `SimpleFile`. Specs:
PEP 503 (HTML), PEP 592 (yanked), PEP 629 (repository version), PEP 658 / PEP 714 (core
metadata), PEP 691 (JSON, content types), PEP 700 (`versions`, `size`, `upload-time`).

Everything on the page is untrusted. Each file is checked before use: its filename must be a
wheel or a `.tar.gz` / `.zip` sdist of the project asked for, with no path in it, and its URL
must be http(s) once resolved against the page. Files that fail are skipped, and counted with
their reasons so the caller can log them; a page that cannot be read at all (not JSON, an API
major version other than 1) raises UpstreamError. A file without a sha256 is kept (old devpi,
pypiserver, Artifactory and plain directory listings give none, or only PEP 503's `#md5=`),
with its md5 when well formed: the proxy computes the sha256 when it fetches the file.

Pure: no network, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import orjson
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)

from packhouse.errors import UpstreamError
from packhouse.formats.pypi.simple import HTML_LATEST, HTML_V1, JSON_LATEST, JSON_V1, TEXT_HTML

__all__ = [
    "ACCEPT",
    "MAX_FILENAME_LENGTH",
    "RemoteFile",
    "RemotePage",
    "accept_header",
    "check_filename",
    "parse_html_page",
    "parse_json_page",
    "parse_project_page",
]

# PEP 691 "Version + Format Selection": JSON preferred, HTML accepted, text/html last.
ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.2, {TEXT_HTML};q=0.01"
MAX_FILENAME_LENGTH = 255
_MAX_PROBLEMS = 20  # reasons kept for the log; the count covers all
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def accept_header() -> str:
    """The `Accept` header to send for an upstream project page."""
    return ACCEPT


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file an upstream lists for a project, checked but not yet fetched."""

    filename: str  # PEP 691 `filename` / the PEP 503 anchor text (else the URL's last segment)
    url: str  # absolute http(s), resolved against the page URL, without the fragment
    sha256: str | None  # PEP 691 `hashes.sha256` / PEP 503 `#sha256=`; lowercase hex
    requires_python: str | None  # PEP 503 `data-requires-python` / PEP 691 `requires-python`
    yanked: str | None  # PEP 592: None = not yanked, "" = yanked without a reason, else reason
    upload_time: datetime | None  # PEP 700 `upload-time` (JSON only), UTC
    size: int | None  # PEP 700 `size` (JSON only)
    # PEP 658/714: the sha256 of the `.metadata` file; True = served, no sha256 given;
    # False = not served.
    core_metadata: str | bool = False
    # PEP 503 `#md5=` / PEP 691 `hashes.md5`, lowercase hex, for a file without a sha256 (the
    # one hash a proxy then has; checked when the file is fetched). A malformed one is ignored.
    md5: str | None = None


@dataclass(frozen=True, slots=True)
class RemotePage:
    """What an upstream's `/simple/<project>/` lists."""

    name: NormalizedName  # the project asked for
    files: tuple[RemoteFile, ...]
    versions: tuple[str, ...] | None  # PEP 700 `versions` (JSON API 1.1+); None if not given
    last_serial: int | None  # PyPI's `meta._last-serial`, when given
    skipped: int = 0  # files left out because they failed a check
    problems: tuple[str, ...] = field(default=())  # why, for the first few skipped


# ---------------------------------------------------------------------------------------------
# Checks shared by both forms


def check_filename(filename: str, project: NormalizedName) -> str | None:
    """Why `filename` is not a usable file of `project`, or None when it is."""
    if not filename or len(filename) > MAX_FILENAME_LENGTH:
        return f"filename of {len(filename)} characters"
    if any(c in filename for c in "/\\\x00") or ".." in filename or filename.startswith("."):
        return f"filename {filename!r} has a path in it"
    if not filename.isprintable() or filename != filename.strip():
        return f"filename {filename!r} has control characters or spaces"
    if filename.endswith(".whl"):
        try:
            name = parse_wheel_filename(filename)[0]
        except InvalidWheelFilename as exc:
            return f"{filename!r} is not a valid wheel filename: {exc}"
        if name != project:
            return f"wheel {filename!r} is of project {name!r}, not {project!r}"
        return None
    for ext in (".tar.gz", ".zip"):
        if filename.endswith(ext):
            stem = filename.removesuffix(ext)
            # pip's rule: some dash splits the stem into the project's name and a version.
            for i, c in enumerate(stem):
                if c == "-" and i + 1 < len(stem) and canonicalize_name(stem[:i]) == project:
                    return None
            return f"sdist {filename!r} is not named <{project}>-<version>{ext}"
    return f"{filename!r} is neither a wheel nor a .tar.gz or .zip sdist"


def _absolute_url(href: str, base: str) -> tuple[str, str] | str:
    """(URL without fragment, fragment), or why the link cannot be used."""
    if not href or any(ord(c) < 0x20 or c == "\x7f" for c in href):
        return "an empty link or one with control characters"
    try:
        url, fragment = urldefrag(urljoin(base, href.strip()))
        parts = urlsplit(url)
    except ValueError as exc:
        return f"an invalid link: {exc}"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"a link that is not http(s) with a host: {url[:200]!r}"
    return url, fragment


def _last_segment(url: str) -> str:
    return unquote(urlsplit(url).path.rpartition("/")[2])


def _sha256(value: object) -> str | None:
    if isinstance(value, str) and _SHA256.match(value):
        return value.lower()
    return None


def _md5(value: object) -> str | None:
    if isinstance(value, str) and _MD5.match(value):
        return value.lower()
    return None


class _Problems:
    def __init__(self) -> None:
        self.count = 0
        self.reasons: list[str] = []

    def add(self, reason: str) -> None:
        self.count += 1
        if len(self.reasons) < _MAX_PROBLEMS:
            self.reasons.append(reason)


def _check_major(version: object, where: str) -> None:
    """PEP 629/691: a client must refuse a major version it does not know."""
    if version is None:
        return
    major = str(version).strip().partition(".")[0]
    if major != "1":
        raise UpstreamError(
            f"the upstream's {where} speaks Simple API version {str(version)[:20]!r}; "
            "Packhouse reads version 1"
        )


# ---------------------------------------------------------------------------------------------
# PEP 691 JSON


def _json_core_metadata(value: object) -> str | bool:
    if isinstance(value, Mapping):
        return _sha256(value.get("sha256")) or bool(value)
    return value is True


def _json_upload_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _json_file(raw: Any, page_url: str, project: NormalizedName) -> RemoteFile | str:
    if not isinstance(raw, Mapping):
        return "a file entry that is not an object"
    filename, href = raw.get("filename"), raw.get("url")
    if not isinstance(filename, str) or not isinstance(href, str):
        return "a file entry without a filename and url"
    why = check_filename(filename, project)
    if why is not None:
        return why
    resolved = _absolute_url(href, page_url)
    if isinstance(resolved, str):
        return f"{filename!r} has {resolved}"
    hashes = raw.get("hashes")
    sha256 = _sha256(hashes.get("sha256")) if isinstance(hashes, Mapping) else None
    if isinstance(hashes, Mapping) and "sha256" in hashes and sha256 is None:
        return f"{filename!r} has a malformed sha256"
    md5 = _md5(hashes.get("md5")) if isinstance(hashes, Mapping) and sha256 is None else None
    yanked_raw = raw.get("yanked", False)
    yanked = yanked_raw if isinstance(yanked_raw, str) else ("" if yanked_raw is True else None)
    requires = raw.get("requires-python")
    size = raw.get("size")
    core = raw.get("core-metadata", raw.get("dist-info-metadata", False))
    return RemoteFile(
        filename=filename,
        url=resolved[0],
        sha256=sha256,
        requires_python=(requires.strip() or None) if isinstance(requires, str) else None,
        yanked=yanked,
        upload_time=_json_upload_time(raw.get("upload-time")),
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        core_metadata=_json_core_metadata(core),
        md5=md5,
    )


def parse_json_page(body: bytes, page_url: str, project: str) -> RemotePage:
    """A PEP 691 JSON project page."""
    name = canonicalize_name(project)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"the upstream's page for {name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"the upstream's page for {name} is not a JSON object")
    meta = data.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    _check_major(meta.get("api-version"), f"page for {name}")
    problems = _Problems()
    files: list[RemoteFile] = []
    raw_files = data.get("files")
    for raw in raw_files if isinstance(raw_files, list) else ():
        got = _json_file(raw, page_url, name)
        if isinstance(got, str):
            problems.add(got)
        else:
            files.append(got)
    raw_versions = data.get("versions")
    versions = (
        tuple(v for v in raw_versions if isinstance(v, str))
        if isinstance(raw_versions, list)
        else None
    )
    serial = meta.get("_last-serial")
    return RemotePage(
        name=name,
        files=tuple(files),
        versions=versions,
        last_serial=serial if isinstance(serial, int) and not isinstance(serial, bool) else None,
        skipped=problems.count,
        problems=tuple(problems.reasons),
    )


# ---------------------------------------------------------------------------------------------
# PEP 503 HTML


class _Anchors(HTMLParser):
    """Collect `<a>` elements (attributes and text), `<base href>` and the PEP 629 meta."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.base: str | None = None
        self.repository_version: str | None = None
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._close()
            self._open = dict(attrs)
            self._text = []
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "meta":
            values = dict(attrs)
            if values.get("name") == "pypi:repository-version":
                self.repository_version = values.get("content")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._close()

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def _close(self) -> None:
        if self._open is not None:
            self.anchors.append((self._open, "".join(self._text).strip()))
            self._open = None

    def close(self) -> None:
        super().close()
        self._close()


def _html_core_metadata(attrs: Mapping[str, str | None]) -> str | bool:
    for key in ("data-core-metadata", "data-dist-info-metadata"):  # PEP 714 first
        if key in attrs:
            value = (attrs[key] or "").strip()
            if value.lower() == "true":
                return True
            kind, sep, digest = value.partition("=")
            if sep and kind.strip().lower() == "sha256" and _sha256(digest.strip()):
                return digest.strip().lower()
            return bool(sep)  # another hash kind: served, but nothing we can check
    return False


def _html_file(
    attrs: Mapping[str, str | None], text: str, base: str, project: NormalizedName
) -> RemoteFile | str:
    resolved = _absolute_url(attrs.get("href") or "", base)
    if isinstance(resolved, str):
        return f"{text[:100]!r} has {resolved}"
    url, fragment = resolved
    filename = text or _last_segment(url)
    why = check_filename(filename, project)
    if why is not None:
        return why
    kind, _, digest = fragment.partition("=")
    sha256 = None
    if kind.lower() == "sha256":
        sha256 = _sha256(digest)
        if sha256 is None:
            return f"{filename!r} has a malformed sha256"
    md5 = _md5(digest) if kind.lower() == "md5" else None
    requires = attrs.get("data-requires-python")
    yanked = (attrs["data-yanked"] or "") if "data-yanked" in attrs else None
    return RemoteFile(
        filename=filename,
        url=url,
        sha256=sha256,
        requires_python=(requires.strip() or None) if requires else None,
        yanked=yanked,
        upload_time=None,
        size=None,
        core_metadata=_html_core_metadata(attrs),
        md5=md5,
    )


def parse_html_page(body: bytes, page_url: str, project: str, charset: str = "utf-8") -> RemotePage:
    """A PEP 503 HTML project page."""
    name = canonicalize_name(project)
    try:
        text = body.decode(charset, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    parser = _Anchors()
    parser.feed(text)
    parser.close()
    _check_major(parser.repository_version, f"page for {name}")
    base = page_url
    if parser.base:
        joined = _absolute_url(parser.base, page_url)
        if not isinstance(joined, str):
            base = joined[0]
    problems = _Problems()
    files: list[RemoteFile] = []
    for attrs, anchor_text in parser.anchors:
        got = _html_file(attrs, anchor_text, base, name)
        if isinstance(got, str):
            problems.add(got)
        else:
            files.append(got)
    return RemotePage(
        name=name,
        files=tuple(files),
        versions=None,
        last_serial=None,
        skipped=problems.count,
        problems=tuple(problems.reasons),
    )


# ---------------------------------------------------------------------------------------------
# Dispatch on Content-Type

_JSON_TYPES = frozenset({JSON_V1, JSON_LATEST, "application/json"})
_HTML_TYPES = frozenset({HTML_V1, HTML_LATEST, TEXT_HTML, ""})


def parse_project_page(body: bytes, content_type: str, page_url: str, project: str) -> RemotePage:
    """Parse an upstream project page by its response `Content-Type` (PEP 691)."""
    media, *params = (content_type or "").split(";")
    media = media.strip().lower()
    if media in _JSON_TYPES:
        return parse_json_page(body, page_url, project)
    if media in _HTML_TYPES:
        charset = "utf-8"
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        return parse_html_page(body, page_url, project, charset)
    raise UpstreamError(
        f"the upstream answered the page for {canonicalize_name(project)} as "
        f"{media[:100]!r}, which is not a Simple API content type ({JSON_V1} or {HTML_V1})"
    )
