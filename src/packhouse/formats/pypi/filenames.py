"""Distribution filenames: what an uploaded file's name says, checked before its bytes are read.

Wheel names follow the binary distribution format spec (PEP 427/491, via
`packaging.utils.parse_wheel_filename`). Source distributions follow PEP 625:
`{name}-{version}.tar.gz` (or `.zip`) with the name normalised, lowercase with runs of `-_.`
written `_`, and the version normalised (`str(Version(v))`). The legacy spellings older
setuptools wrote (`Foo.Bar-1.0.tar.gz`, `foo-bar-1.0.tar.gz`) are refused with the name to
use: they are what lets `a-b-1.0.tar.gz` be read as project `a`, version `b-1.0` by one tool
and as `a-b` 1.0 by another. (PyPI still takes them, normalising the name; setuptools 69.3,
hatchling, flit, pdm and uv have all written PEP 625 names since 2024.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from packhouse.errors import InvalidUpload

__all__ = [
    "MAX_FILENAME_LENGTH",
    "DistFilename",
    "DistKind",
    "parse_dist_filename",
]

MAX_FILENAME_LENGTH = 255

DistKind = Literal["wheel", "sdist"]

# The project-name grammar of the core metadata spec ("Name" field), case-insensitive.
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)

_ACCEPTED = "accepted: '.whl' (wheel), '.tar.gz' or '.zip' (source distribution)"

# Extensions people still try to upload, with the reason we refuse each.
_REFUSED_EXTENSIONS: dict[str, str] = {
    ".egg": "eggs are not accepted (PyPI stopped accepting them in 2023); build a wheel",
    ".exe": "bdist_wininst installers are not accepted; build a wheel",
    ".msi": "bdist_msi installers are not accepted; build a wheel",
    ".rpm": "bdist_rpm packages are not accepted; build a wheel",
    ".tar.bz2": "'.tar.bz2' source distributions are not accepted; use '.tar.gz'",
    ".tar.xz": "'.tar.xz' source distributions are not accepted; use '.tar.gz'",
    ".tar.zst": "'.tar.zst' source distributions are not accepted; use '.tar.gz'",
    ".tgz": "'.tgz' source distributions are not accepted; name the file '.tar.gz'",
    ".tar": "uncompressed '.tar' source distributions are not accepted; use '.tar.gz'",
    ".conda": "conda packages belong in a conda repository, not a PyPI one",
}


@dataclass(frozen=True, slots=True)
class DistFilename:
    """A parsed, validated distribution filename."""

    filename: str
    name: NormalizedName
    version: Version
    kind: DistKind
    tags: frozenset[Tag]  # empty for an sdist
    build: tuple[()] | tuple[int, str]  # the wheel build tag; () when absent or for an sdist

    @property
    def python_tag(self) -> str:
        """The python tag as written in a wheel's name (`py2.py3`, `cp311`), `source` for an
        sdist: what PyPI's JSON API calls `python_version`."""
        if self.kind == "sdist":
            return "source"
        return self.filename[: -len(".whl")].split("-")[-3]


def _check_safe(filename: str) -> None:
    """Refuse names that could mean something other than one plain file name."""
    if not filename:
        raise InvalidUpload("the filename is empty")
    if len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidUpload(
            f"the filename is {len(filename)} characters long;"
            f" at most {MAX_FILENAME_LENGTH} are allowed"
        )
    for char, what in (("/", "'/'"), ("\\", "a backslash"), ("\x00", "a NUL byte")):
        if char in filename:
            raise InvalidUpload(f"filename {filename!r} contains {what}; send a plain file name")
    if "\r" in filename or "\n" in filename:
        raise InvalidUpload(f"filename {filename!r} contains a line break")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in filename):
        raise InvalidUpload(f"filename {filename!r} contains a control character")
    if ".." in filename:
        raise InvalidUpload(f"filename {filename!r} contains '..'")
    if filename.startswith("."):
        raise InvalidUpload(f"filename {filename!r} starts with a dot")


def _kind_of(filename: str) -> DistKind:
    lower = filename.lower()
    if lower.endswith(".whl"):
        return "wheel"
    if lower.endswith((".tar.gz", ".zip")):
        return "sdist"
    for extension, reason in _REFUSED_EXTENSIONS.items():
        if lower.endswith(extension):
            raise InvalidUpload(f"cannot accept {filename!r}: {reason} ({_ACCEPTED})")
    raise InvalidUpload(f"cannot accept {filename!r}: unknown file extension ({_ACCEPTED})")


def _parse_wheel(filename: str) -> DistFilename:
    if not filename.endswith(".whl"):
        raise InvalidUpload(f"invalid wheel filename {filename!r}: the extension must be '.whl'")
    try:
        name, version, build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as error:
        raise InvalidUpload(
            f"invalid wheel filename {filename!r}: {error}; expected"
            " '{name}-{version}(-{build})?-{python tag}-{abi tag}-{platform tag}.whl'"
        ) from error
    return DistFilename(filename, name, version, "wheel", tags, build)


def _parse_sdist(filename: str, legacy_names: bool) -> DistFilename:
    if filename.endswith(".tar.gz"):
        stem = filename[: -len(".tar.gz")]
    elif filename.endswith(".zip"):
        stem = filename[: -len(".zip")]
    else:
        raise InvalidUpload(
            f"invalid sdist filename {filename!r}: the extension must be '.tar.gz' or '.zip'"
            " (lowercase)"
        )
    # A PEP 440 version holds no '-', so the name is everything before the last one.
    name_part, dash, version_part = stem.rpartition("-")
    expected = "expected '{name}-{version}.tar.gz'"
    if not dash or not name_part:
        raise InvalidUpload(f"invalid sdist filename {filename!r}: {expected}")
    if not _PROJECT_NAME.match(name_part):
        raise InvalidUpload(
            f"invalid sdist filename {filename!r}: {name_part!r} is not a valid project name"
            f" (letters, digits, '.', '_' and '-', starting and ending with a letter or digit);"
            f" {expected}"
        )
    try:
        version = Version(version_part)
    except InvalidVersion as error:
        raise InvalidUpload(
            f"invalid sdist filename {filename!r}: {version_part!r} is not a valid version"
            " (see https://packaging.python.org/en/latest/specifications/version-specifiers/)"
        ) from error
    normal_name = canonicalize_name(name_part).replace("-", "_")
    if not legacy_names and (name_part != normal_name or version_part != str(version)):
        extension = filename[len(stem) :]
        raise InvalidUpload(
            f"invalid sdist filename {filename!r}: PEP 625 names a source distribution by its"
            f" normalised name and version, here '{normal_name}-{version}{extension}';"
            " build it with a current build backend (setuptools 69.3 or later, hatchling,"
            " flit-core, pdm-backend, uv) or rename it"
        )
    return DistFilename(filename, canonicalize_name(name_part), version, "sdist", frozenset(), ())


def parse_dist_filename(filename: str, *, legacy_names: bool = False) -> DistFilename:
    """Parse and validate an uploaded distribution's filename.

    Raises `InvalidUpload` saying what is wrong: an unsafe name (path separators, `..`,
    control characters, a leading dot, too long), an extension we do not accept, or a name
    that does not follow the wheel or sdist naming rules. `legacy_names` takes the sdist
    names PyPI still serves (`Foo.Bar-1.0.tar.gz`), for reading files that exist (the static
    indexer), never for uploads.
    """
    _check_safe(filename)
    if _kind_of(filename) == "wheel":
        return _parse_wheel(filename)
    return _parse_sdist(filename, legacy_names)
