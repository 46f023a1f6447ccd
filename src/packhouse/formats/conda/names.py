"""Conda names, versions, build strings, subdirs and filenames, as CEP 26 defines them.

CEP 26 ("Identifying Packages and Channels in the conda Ecosystem") gives the regexes used here.
Every check returns a list of problems (empty when valid) so a caller can report them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "EXTENSIONS",
    "PackageFilename",
    "build_problems",
    "name_problems",
    "parse_filename",
    "subdir_problems",
    "version_problems",
]

EXTENSIONS = (".conda", ".tar.bz2")

# CEP 26, "Package names": lowercase letters, digits, '-', '.', '_'; starts with a letter, digit
# or a single underscore; no two consecutive separators; at most 64 characters.
_NAME = re.compile(r"^(([a-z0-9])|([a-z0-9_](?!_)))[._-]?([a-z0-9]+(\.|-|_|$))*$")
# CEP 26, "Version strings": digits, '.', lowercase letters, '_', '+', '!'; at most 64.
_VERSION = re.compile(r"^[0-9a-z._+!]+$")
# CEP 26, "Build strings": `^[a-zA-Z0-9_\.+]+$`, at most 64.
_BUILD = re.compile(r"^[a-zA-Z0-9_.+]+$")
# CEP 26, "Subdir names": `noarch` or `^[a-z0-9]+-[a-z0-9]+$`, at most 32.
_SUBDIR = re.compile(r"^[a-z0-9]+-[a-z0-9]+$")
MAX_NAME = 64
MAX_VERSION = 64
MAX_BUILD = 64
MAX_SUBDIR = 32
MAX_FILENAME = 211


def name_problems(name: str) -> list[str]:
    if len(name) > MAX_NAME:
        return [f"package name {name!r} is longer than {MAX_NAME} characters (CEP 26)"]
    if not _NAME.match(name):
        return [
            f"package name {name!r} is not valid: use lowercase letters, digits, '-', '.' and"
            " '_', starting with a letter, a digit or one '_', without two separators in a row"
            " (CEP 26)"
        ]
    return []


def version_problems(version: str) -> list[str]:
    if len(version) > MAX_VERSION:
        return [f"version {version!r} is longer than {MAX_VERSION} characters (CEP 26)"]
    if not _VERSION.match(version):
        return [
            f"version {version!r} is not valid: use digits, '.', lowercase letters, '_', '+'"
            " and '!' (CEP 26)"
        ]
    return []


def build_problems(build: str) -> list[str]:
    if len(build) > MAX_BUILD:
        return [f"build string {build!r} is longer than {MAX_BUILD} characters (CEP 26)"]
    if not _BUILD.match(build):
        return [
            f"build string {build!r} is not valid: use letters, digits, '_', '.' and '+' (CEP 26)"
        ]
    return []


def subdir_problems(subdir: str) -> list[str]:
    if subdir == "noarch":
        return []
    if len(subdir) > MAX_SUBDIR or not _SUBDIR.match(subdir):
        return [
            f"subdir {subdir!r} is not valid: use 'noarch' or '<os>-<arch>' in lowercase letters"
            " and digits (CEP 26)"
        ]
    return []


@dataclass(frozen=True)
class PackageFilename:
    """`<name>-<version>-<build>.<ext>`, split from the right (names may hold '-')."""

    filename: str
    name: str
    version: str
    build: str
    extension: str

    @property
    def stem(self) -> str:
        return self.filename[: -len(self.extension)]


def parse_filename(filename: str) -> PackageFilename | None:
    """Split a conda filename, or None when it is not `<name>-<version>-<build>.<ext>`."""
    if "/" in filename or "\\" in filename or len(filename) > MAX_FILENAME:
        return None
    for extension in EXTENSIONS:
        if filename.endswith(extension):
            parts = filename[: -len(extension)].rsplit("-", 2)
            if len(parts) == 3 and all(parts):
                return PackageFilename(filename, parts[0], parts[1], parts[2], extension)
            return None
    return None
