"""Core metadata (METADATA / PKG-INFO), parsed in two steps (STYLE.md rule 6).

1. `packaging.metadata.parse_email`: a lenient raw dict, plus the fields it could not parse.
2. `packaging.metadata.Metadata.from_raw(validate=True)`: every field checked, every error
   collected, so an upload is refused with the full list of what is wrong.

Lenient where PyPI is lenient: unknown fields are ignored, and a field newer than the
declared `Metadata-Version` is accepted (setuptools and hatchling long wrote `License-File`
and `License-Expression` under `Metadata-Version: 2.1`, and PyPI took those uploads).
Never lenient about `Name` and `Version`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.metadata import (
    InvalidMetadata,
    Metadata,
    RawMetadata,
    parse_email,
)
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from packhouse.errors import InvalidUpload
from packhouse.formats.pypi.filenames import DistFilename

__all__ = [
    "CoreMetadata",
    "check_matches_filename",
    "parse_core_metadata",
]

# Every field `packaging` knows, as email headers in lowercase: to tell "known but malformed"
# (refused) from "unknown" (ignored).
_KNOWN_FIELDS = {
    "author",
    "author-email",
    "classifier",
    "description",
    "description-content-type",
    "download-url",
    "dynamic",
    "home-page",
    "import-name",
    "import-namespace",
    "keywords",
    "license",
    "license-expression",
    "license-file",
    "maintainer",
    "maintainer-email",
    "metadata-version",
    "name",
    "obsoletes",
    "obsoletes-dist",
    "platform",
    "project-url",
    "provides",
    "provides-dist",
    "provides-extra",
    "requires",
    "requires-dist",
    "requires-external",
    "requires-python",
    "summary",
    "supported-platform",
    "version",
}
_NEWER_FIELD = "introduced in metadata version"
_NEWEST_METADATA_VERSION = "2.4"


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    """The validated core metadata of one distribution.

    Field names follow https://packaging.python.org/en/latest/specifications/core-metadata/.
    """

    metadata_version: str
    name: str  # as written; canonicalize_name() it to compare
    version: str  # normalised: str(Version(...))
    summary: str | None = None
    description: str | None = None
    description_content_type: str | None = None
    keywords: list[str] = field(default_factory=list)
    home_page: str | None = None
    download_url: str | None = None
    author: str | None = None
    author_email: str | None = None
    maintainer: str | None = None
    maintainer_email: str | None = None
    license: str | None = None
    license_expression: str | None = None  # 2.4, PEP 639
    license_files: list[str] = field(default_factory=list)  # 2.4, PEP 639
    classifiers: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    supported_platforms: list[str] = field(default_factory=list)
    requires_python: str | None = None
    requires_dist: list[str] = field(default_factory=list)
    requires_external: list[str] = field(default_factory=list)
    provides_extra: list[str] = field(default_factory=list)
    provides_dist: list[str] = field(default_factory=list)
    obsoletes_dist: list[str] = field(default_factory=list)
    project_urls: dict[str, str] = field(default_factory=dict)
    dynamic: list[str] = field(default_factory=list)


def _problem(error: Exception) -> tuple[str, str]:
    """(field, "field: problem") for one validation error."""
    if isinstance(error, InvalidMetadata):
        text = str(error)
        return error.field, text if text.startswith(error.field) else f"{error.field}: {text}"
    return "", str(error)


def _flatten(group: BaseExceptionGroup[Exception]) -> list[Exception]:
    out: list[Exception] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            out.extend(_flatten(error))
        else:
            out.append(error)
    return out


def _validate(raw: RawMetadata) -> tuple[Metadata | None, list[tuple[str, str]]]:
    """Validate `raw`; tolerate fields newer than the declared metadata version."""
    try:
        return Metadata.from_raw(raw, validate=True), []
    except ExceptionGroup as group:
        errors = _flatten(group)
    if not any(_NEWER_FIELD in str(e) for e in errors):
        return None, [_problem(e) for e in errors]
    # Validate again as the newest version we know, so the newer fields are checked too.
    bumped: RawMetadata = {**raw, "metadata_version": _NEWEST_METADATA_VERSION}
    try:
        return Metadata.from_raw(bumped, validate=True), []
    except ExceptionGroup as group:
        return None, [_problem(e) for e in _flatten(group)]


def _check_name_version(raw: RawMetadata, unparsed: set[str]) -> list[str]:
    """Name and version get their own plain messages: we are never lenient about them."""
    problems: list[str] = []
    name = raw.get("name")
    if "name" in unparsed:
        problems.append("name: the Name field is given more than once or is not valid text")
    elif not name:
        problems.append("name: the Name field is missing; every distribution must have one")
    else:
        try:
            canonicalize_name(name, validate=True)
        except ValueError:
            problems.append(
                f"name: {name!r} is not a valid project name (letters, digits, '.', '_' and"
                " '-', starting and ending with a letter or digit)"
            )
    version = raw.get("version")
    if "version" in unparsed:
        problems.append("version: the Version field is given more than once or is not valid text")
    elif not version:
        problems.append("version: the Version field is missing; every distribution must have one")
    else:
        try:
            Version(version)
        except InvalidVersion:
            problems.append(
                f"version: {version!r} is not a valid version (see"
                " https://packaging.python.org/en/latest/specifications/version-specifiers/)"
            )
    return problems


def parse_core_metadata(data: bytes) -> CoreMetadata:
    """Parse and validate a METADATA or PKG-INFO file; raise `InvalidUpload` listing every
    problem ("field: problem") if it is not acceptable."""
    raw, unparsed_fields = parse_email(data)
    unparsed = {key.lower() for key in unparsed_fields}
    problems = _check_name_version(raw, unparsed)
    problems.extend(
        f"{key}: has invalid data (given more than once, or not valid UTF-8 text)"
        for key in sorted(unparsed & _KNOWN_FIELDS - {"name", "version"})
    )
    validated, errors = _validate(raw)
    for error_field, message in errors:
        if error_field in {"name", "version"} or error_field in unparsed:
            continue  # reported above, in plainer words
        if error_field == "metadata-version" and "metadata_version" not in raw:
            message = "metadata-version: the Metadata-Version field is missing"
        if message not in problems:
            problems.append(message)
    if problems or validated is None:
        raise InvalidUpload(problems or ["metadata: the file could not be validated"])
    return _to_core_metadata(raw, validated)


def _to_core_metadata(raw: RawMetadata, meta: Metadata) -> CoreMetadata:
    return CoreMetadata(
        metadata_version=raw.get("metadata_version", meta.metadata_version),
        name=meta.name,
        version=str(meta.version),
        summary=meta.summary,
        description=meta.description,
        description_content_type=meta.description_content_type,
        keywords=list(meta.keywords or []),
        home_page=meta.home_page,
        download_url=meta.download_url,
        author=meta.author,
        author_email=meta.author_email,
        maintainer=meta.maintainer,
        maintainer_email=meta.maintainer_email,
        license=meta.license,
        license_expression=raw.get("license_expression"),
        license_files=list(raw.get("license_files", [])),
        classifiers=list(meta.classifiers or []),
        platforms=list(meta.platforms or []),
        supported_platforms=list(meta.supported_platforms or []),
        # As written: str(SpecifierSet) would reorder ">=3.8,<4" into "<4,>=3.8".
        requires_python=raw.get("requires_python"),
        requires_dist=list(raw.get("requires_dist", [])),
        requires_external=list(meta.requires_external or []),
        provides_extra=list(raw.get("provides_extra", [])),
        provides_dist=list(meta.provides_dist or []),
        obsoletes_dist=list(meta.obsoletes_dist or []),
        project_urls=dict(meta.project_urls or {}),
        dynamic=list(meta.dynamic or []),
    )


def check_matches_filename(meta: CoreMetadata, dist: DistFilename) -> None:
    """Refuse a distribution whose metadata names another project or version than its file."""
    problems: list[str] = []
    if canonicalize_name(meta.name) != dist.name:
        problems.append(
            f"name: the metadata says {meta.name!r} but the filename {dist.filename!r}"
            f" says {dist.name!r}"
        )
    if Version(meta.version) != dist.version:
        problems.append(
            f"version: the metadata says {meta.version!r} but the filename {dist.filename!r}"
            f" says {str(dist.version)!r}"
        )
    if problems:
        raise InvalidUpload(problems)
