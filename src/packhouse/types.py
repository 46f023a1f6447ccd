"""Small value types shared by every layer."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import NewType

from packaging.utils import NormalizedName, canonicalize_name

from packhouse.errors import InvalidName

__all__ = [
    "Action",
    "Format",
    "NormalizedName",
    "RepoKind",
    "RepoName",
    "Serial",
    "Sha256",
    "canonicalize_name",
    "repo_name",
]

RepoName = NewType("RepoName", str)
Sha256 = NewType("Sha256", str)
Serial = NewType("Serial", int)

_REPO_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class Format(StrEnum):
    PYPI = "pypi"
    CONDA = "conda"


class RepoKind(StrEnum):
    HOSTED = "hosted"
    PROXY = "proxy"


class Action(StrEnum):
    """What a permission or token scope allows; each implies the ones before it."""

    READ = "read"
    UPLOAD = "upload"
    ADMIN = "admin"

    def implies(self, other: Action) -> bool:
        order = [Action.READ, Action.UPLOAD, Action.ADMIN]
        return order.index(self) >= order.index(other)


def repo_name(text: str) -> RepoName:
    """Validate a repository name: lowercase `[a-z0-9][a-z0-9._-]*`, at most 64 characters."""
    if not _REPO_NAME.match(text):
        raise InvalidName(
            f"invalid repository name {text!r}: use lowercase letters, digits, '.', '_' and '-',"
            " starting with a letter or digit, at most 64 characters"
        )
    return RepoName(text)
