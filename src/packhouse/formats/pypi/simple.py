"""The Simple Repository API: one model, two serialisers, and content negotiation.

Specs (all folded into https://packaging.python.org/en/latest/specifications/simple-repository-api/):
PEP 503 (HTML pages), PEP 592 (yanking), PEP 629 (repository version meta tag), PEP 658 and
PEP 714 (core metadata files), PEP 691 (JSON form and content negotiation), PEP 700
(API version 1.1: `versions`, `size`, `upload-time`).

The HTML and JSON forms are built from the same `ProjectPage` / `ProjectIndex` objects, so they
cannot drift. Both are built with list joins (no template, no regex per file): rendering is on
the upload path of every project page. A caller that keeps each file's rendered part
(`file_html`, `file_json`) can join them again (`project_html_joined`, `project_json_joined`)
into the same bytes `project_html` / `project_json` give, without rendering every file.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from packaging.version import InvalidVersion, Version

from packhouse.errors import NotAcceptable

__all__ = [
    "API_VERSION",
    "HTML_V1",
    "JSON_V1",
    "SUPPORTED_MEDIA_TYPES",
    "TEXT_HTML",
    "Negotiated",
    "NotAcceptable",
    "ProjectIndex",
    "ProjectPage",
    "SimpleFile",
    "file_html",
    "file_json",
    "index_html",
    "index_json",
    "negotiate",
    "project_html",
    "project_html_joined",
    "project_json",
    "project_json_joined",
    "sort_versions",
]

# PEP 629 / PEP 700: the API version we speak. 1.1 adds `versions`, `size`, `upload-time`.
API_VERSION = "1.1"

# PEP 691 "Content-Types": application/vnd.pypi.simple.$version+$format; `latest` is a meta
# version answered with the concrete one; text/html is an alias of v1+html.
JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
JSON_LATEST = "application/vnd.pypi.simple.latest+json"
HTML_LATEST = "application/vnd.pypi.simple.latest+html"
TEXT_HTML = "text/html"
SUPPORTED_MEDIA_TYPES = (JSON_V1, JSON_LATEST, HTML_V1, HTML_LATEST, TEXT_HTML)


# ---------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True, slots=True)
class SimpleFile:
    """One distribution file as the Simple API shows it."""

    filename: str  # PEP 691 `filename`; the text of the PEP 503 anchor
    url: str  # PEP 503 href / PEP 691 `url`, without the hash fragment
    # PEP 503 `#sha256=` fragment / PEP 691 `hashes`; None only for a proxied file whose
    # upstream gave no sha256 and that is not fetched yet (then `md5`, if the upstream gave it)
    sha256: str | None
    requires_python: str | None  # PEP 503 `data-requires-python` / PEP 691 `requires-python`
    yanked: str | None  # PEP 592: None = not yanked, "" = yanked, no reason; else the reason
    metadata_sha256: str | None  # PEP 658/714: hash of the `.metadata` file; None = none served
    size: int  # PEP 700 `size` (JSON only)
    upload_time: datetime | None  # PEP 700 `upload-time` (JSON only), UTC
    gpg_sig: bool = False  # PEP 503 `data-gpg-sig` / PEP 691 `gpg-sig`; shown only when True
    # PEP 740 `data-provenance` / `provenance`: the provenance object's URL; shown when set
    provenance: str | None = None
    md5: str | None = None  # shown only without a sha256 (PEP 503 allows md5, PEP 691 any)


def _hashes(file: SimpleFile) -> dict[str, str]:
    """PEP 691 `hashes` of a file without a sha256: md5 if known, else empty (the key must
    be present; PEP 691 only recommends a secure hash)."""
    return {"md5": file.md5} if file.md5 is not None else {}


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """`/simple/<project>/`."""

    name: str  # normalised
    files: Sequence[SimpleFile]
    versions: Sequence[str]  # PEP 700: every version, ascending by Version (see sort_versions)
    last_serial: int  # PyPI's `_last-serial` (JSON meta; an HTML comment like PyPI's)


@dataclass(frozen=True, slots=True)
class ProjectIndex:
    """`/simple/`."""

    projects: Sequence[str]  # normalised names
    last_serial: int


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)  # legacy versions from an upstream sort first, by text


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Versions in PEP 440 order, ascending; ones that do not parse come first."""
    return sorted(versions, key=_version_key)


def _upload_time(when: datetime) -> datetime:
    """PEP 700 `upload-time`: ISO 8601 in UTC with a `Z`. orjson writes it (OPT_UTC_Z), far
    faster than formatting here; a naive time is taken as UTC (OPT_NAIVE_UTC)."""
    if when.tzinfo is None or when.tzinfo is UTC or when.utcoffset() == _ZERO:
        return when
    return when.astimezone(UTC)


_ZERO = timedelta(0)
_JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


# ---------------------------------------------------------------------------------------------
# HTML (PEP 503 + 592 + 629 + 658/714)

_escape = html.escape


def _head(title: str) -> str:
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        # PEP 629: the repository version, as a meta tag.
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"    <title>{title}</title>\n  </head>\n  <body>\n    <h1>{title}</h1>\n"
    )


def _tail(last_serial: int) -> str:
    return f"  </body>\n</html>\n<!--SERIAL {last_serial}-->\n"


def _page(title: str, body: list[str], last_serial: int) -> bytes:
    return "".join((_head(title), *body, _tail(last_serial))).encode()


def _anchor(file: SimpleFile) -> str:
    # PEP 503: href with a `#sha256=` fragment (or `#md5=`, or none: see SimpleFile.sha256);
    # the anchor text is the filename.
    if file.sha256 is not None:
        parts = ['    <a href="', _escape(file.url), "#sha256=", file.sha256, '"']
    else:
        fragment = f"#md5={file.md5}" if file.md5 is not None else ""
        parts = ['    <a href="', _escape(file.url), fragment, '"']
    if file.requires_python is not None:
        # PEP 503: data-requires-python, with < and > escaped as &lt; and &gt;.
        parts += [' data-requires-python="', _escape(file.requires_python), '"']
    if file.yanked is not None:
        # PEP 592: data-yanked, its value the reason (possibly empty).
        parts += [' data-yanked="', _escape(file.yanked), '"']
    if file.metadata_sha256 is not None:
        # PEP 714: data-core-metadata, plus PEP 658's data-dist-info-metadata for older pips.
        meta = _escape(file.metadata_sha256)
        parts += [
            ' data-dist-info-metadata="sha256=',
            meta,
            '" data-core-metadata="sha256=',
            meta,
            '"',
        ]
    if file.gpg_sig:
        parts.append(' data-gpg-sig="true"')
    if file.provenance is not None:
        # PEP 740: data-provenance, the URL of the file's provenance object.
        parts += [' data-provenance="', _escape(file.provenance), '"']
    parts += [">", _escape(file.filename), "</a><br />\n"]
    return "".join(parts)


def project_html(page: ProjectPage) -> bytes:
    """`/simple/<project>/` as PEP 503 HTML."""
    return _page(
        f"Links for {_escape(page.name)}",
        [_anchor(f) for f in page.files],
        page.last_serial,
    )


def file_html(file: SimpleFile) -> bytes:
    """One file's line of `project_html`, for `project_html_joined`."""
    return _anchor(file).encode()


def project_html_joined(name: str, files: Iterable[bytes], last_serial: int) -> bytes:
    """`project_html` of a page from its files' `file_html` parts, in the page's order."""
    title = f"Links for {_escape(name)}"
    return b"".join((_head(title).encode(), *files, _tail(last_serial).encode()))


def index_html(index: ProjectIndex) -> bytes:
    """`/simple/` as PEP 503 HTML: one anchor per project, linking to `<name>/`."""
    body = [f'    <a href="{n}/">{n}</a><br />\n' for n in map(_escape, index.projects)]
    return _page("Simple index", body, index.last_serial)


# ---------------------------------------------------------------------------------------------
# JSON (PEP 691 + 700 + 714)


def _meta(last_serial: int) -> dict[str, Any]:
    # PEP 691 `meta.api-version`; `_last-serial` as PyPI sends it.
    return {"api-version": API_VERSION, "_last-serial": last_serial}


def _file_json(file: SimpleFile) -> dict[str, Any]:
    core: dict[str, str] | bool = (
        {"sha256": file.metadata_sha256} if file.metadata_sha256 is not None else False
    )
    out: dict[str, Any] = {
        "filename": file.filename,
        "url": file.url,
        "hashes": {"sha256": file.sha256} if file.sha256 is not None else _hashes(file),
        # PEP 691 + 592: false, true (no reason), or the reason.
        "yanked": (file.yanked or True) if file.yanked is not None else False,
        # PEP 714: `core-metadata`, plus PEP 691's original `dist-info-metadata` key.
        "core-metadata": core,
        "dist-info-metadata": core,
        "size": file.size,  # PEP 700
    }
    if file.requires_python is not None:
        out["requires-python"] = file.requires_python
    if file.upload_time is not None:
        out["upload-time"] = _upload_time(file.upload_time)  # PEP 700
    if file.gpg_sig:
        out["gpg-sig"] = True
    if file.provenance is not None:
        out["provenance"] = file.provenance  # PEP 740
    return out


def project_json(page: ProjectPage) -> bytes:
    """`/simple/<project>/` as PEP 691 JSON (API 1.1)."""
    return orjson.dumps(
        {
            "meta": _meta(page.last_serial),
            "name": page.name,
            "files": [_file_json(f) for f in page.files],
            "versions": list(page.versions),  # PEP 700
        },
        option=_JSON_OPTIONS,
    )


def file_json(file: SimpleFile) -> bytes:
    """One file's object in `project_json`'s `files`, for `project_json_joined`."""
    # Copied: orjson's result keeps its whole (4 kB) buffer allocated, 10x a file's part.
    return bytes(memoryview(orjson.dumps(_file_json(file), option=_JSON_OPTIONS)))


def project_json_joined(
    name: str, files: Iterable[bytes], versions: Sequence[str], last_serial: int
) -> bytes:
    """`project_json` of a page from its files' `file_json` parts, in the page's order: the
    same keys in the same order, and orjson writes no whitespace, so the same bytes."""
    return b"".join(
        (
            b'{"meta":',
            orjson.dumps(_meta(last_serial), option=_JSON_OPTIONS),
            b',"name":',
            orjson.dumps(name),
            b',"files":[',
            b",".join(files),
            b'],"versions":',
            orjson.dumps(list(versions)),
            b"}",
        )
    )


def index_json(index: ProjectIndex) -> bytes:
    """`/simple/` as PEP 691 JSON."""
    return orjson.dumps(
        {"meta": _meta(index.last_serial), "projects": [{"name": n} for n in index.projects]},
        option=_JSON_OPTIONS,
    )


# ---------------------------------------------------------------------------------------------
# Content negotiation (PEP 691 "Version + Format Selection")


def _not_acceptable(asked: str) -> NotAcceptable:
    return NotAcceptable(
        f"cannot answer with any of {asked}; this index serves " + ", ".join(SUPPORTED_MEDIA_TYPES)
    )


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The chosen representation: which serialiser to call and the Content-Type to send."""

    kind: Literal["html", "json"]
    content_type: str


_AS_JSON = Negotiated("json", JSON_V1)
_AS_HTML_V1 = Negotiated("html", HTML_V1)
_AS_TEXT_HTML = Negotiated("html", TEXT_HTML)

# What each media type names. PEP 691: `latest` MUST be answered with the concrete version's
# content type, so latest+json -> v1+json.
_BY_TYPE: dict[str, Negotiated] = {
    JSON_V1: _AS_JSON,
    JSON_LATEST: _AS_JSON,
    HTML_V1: _AS_HTML_V1,
    HTML_LATEST: _AS_HTML_V1,
    TEXT_HTML: _AS_TEXT_HTML,
}

# Tie-breaks between representations of equal quality.
# - Named explicitly by the client: PEP 691's recommendation (non-normative) is "the most
#   expressive/featureful serialization format ... and it should only use the text/html
#   content type as a last resort": JSON, then v1+html, then text/html.
# - Reached only through a wildcard (`*/*`, `application/*`, or no Accept header, which
#   PEP 691 treats as `*/*`): text/html, as pypi.org does. Clients that send `*/*` (requests'
#   default, curl, older tools scraping PEP 503 pages) expect HTML.
_EXPLICIT_ORDER = {_AS_JSON: 3, _AS_HTML_V1: 2, _AS_TEXT_HTML: 1}
_WILDCARD_ORDER = {_AS_TEXT_HTML: 3, _AS_HTML_V1: 2, _AS_JSON: 1}
_REPRESENTATIONS = (_AS_JSON, _AS_HTML_V1, _AS_TEXT_HTML)


def _parse_q(value: str) -> float | None:
    """RFC 9110 qvalue: 0 to 1 with up to three decimals; None if malformed."""
    try:
        q = float(value)
    except ValueError:
        return None
    if not 0.0 <= q <= 1.0 or len(value) > 5:
        return None
    return q


def _parse_accept(accept: str) -> list[tuple[str, float]]:
    """`Accept` -> [(media range in lowercase, q)]; malformed entries are skipped."""
    ranges: list[tuple[str, float]] = []
    for entry in accept.split(","):
        media, *params = entry.split(";")
        media = media.strip().lower()
        if media.count("/") != 1:
            continue
        q: float | None = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                q = _parse_q(value.strip())
                break  # parameters after q are accept-extensions
        if q is not None:
            ranges.append((media, q))
    return ranges


def _specificity(media_range: str, representation: Negotiated) -> int:
    """3 = names the representation, 2 = `type/*`, 1 = `*/*`, 0 = does not match it."""
    if media_range == "*/*":
        return 1
    named = _BY_TYPE.get(media_range)
    if named is not None:
        return 3 if named == representation else 0
    kind, _, subtype = media_range.partition("/")
    if subtype == "*" and representation.content_type.startswith(kind + "/"):
        return 2
    return 0


def negotiate(accept: str | None, format_param: str | None = None) -> Negotiated:
    """Choose HTML or JSON for a Simple API request. A pure function of its arguments, so
    callers may cache it by the raw header.

    `format_param` (PEP 691 "URL Parameter", `?format=`) takes precedence over `Accept` and
    must be exactly one supported media type. No `Accept` header answers text/html. Each
    representation gets the quality of the most specific range that matches it (RFC 9110
    12.5.1; `q=0` means "not acceptable"); the highest quality wins, ties broken as above.
    Raises `NotAcceptable` when nothing we serve is acceptable.
    """
    if format_param:
        chosen = _BY_TYPE.get(format_param.strip().lower())
        if chosen is None:
            raise _not_acceptable(f"format {format_param!r}")
        return chosen
    if accept is None or not accept.strip():
        return _AS_TEXT_HTML
    ranges = _parse_accept(accept)
    best: tuple[float, int, int] | None = None
    chosen = None
    for representation in _REPRESENTATIONS:
        specificity, quality = 0, 0.0
        for media_range, q in ranges:
            s = _specificity(media_range, representation)
            if s > specificity or (s == specificity and s and q > quality):
                specificity, quality = s, q
        if not specificity or quality <= 0.0:
            continue
        order = _EXPLICIT_ORDER if specificity == 3 else _WILDCARD_ORDER
        key = (quality, int(specificity == 3), order[representation])
        if best is None or key > best:
            best, chosen = key, representation
    if chosen is None:
        raise _not_acceptable(f"Accept: {accept!r}")
    return chosen
