"""Hosted conda subdirs in memory: one immutable `SubdirView` per (channel, subdir), the
sections pages are made from, and a view as a source of a resolution order
(services/conda_order.py). Read and kept up to date by services/conda_reads.py."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from packhouse.db import artifact_store
from packhouse.db.repository_store import Repository
from packhouse.services.conda_order import NameRecords

__all__ = [
    "Entry",
    "HostedSubdir",
    "Sections",
    "SubdirContent",
    "SubdirView",
    "apply",
    "name_records",
    "split",
]


@dataclass(frozen=True)
class Entry:
    name: str
    record: bytes
    extra: bytes


@dataclass(frozen=True)
class SubdirView:
    """One subdir at one moment; replaced, never changed."""

    subdir: str
    serial: int = 0  # newest artifact serial seen in the subdir
    patch_serial: int = 0
    live: Mapping[str, Entry] = field(default_factory=dict)
    tombstones: Mapping[str, str] = field(default_factory=dict)  # filename -> name
    by_name: Mapping[str, frozenset[str]] = field(default_factory=dict)  # live and deleted
    name_serials: Mapping[str, int] = field(default_factory=dict)
    instructions: Mapping[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> tuple[int, int]:
        return (self.serial, self.patch_serial)

    @property
    def last_serial(self) -> int:
        return max(self.serial, self.patch_serial)


@dataclass(frozen=True)
class Sections:
    packages: dict[str, bytes]
    packages_conda: dict[str, bytes]
    removed: list[str]


@dataclass(frozen=True)
class SubdirContent:
    """What a subdir's pages are made from: one hosted view, or an order's merge."""

    subdir: str
    last_serial: int
    sections: Callable[[bool], Sections]  # patched, or as uploaded
    entries: Callable[[], Iterable[tuple[str, bytes, bytes]]]  # (filename, record, extra)
    instructions: Mapping[str, Any]
    shard_digests: Callable[[], dict[str, bytes]]
    stale: bool = False


class HostedSubdir:
    """A hosted repository's subdir as a source of an order (services/conda_order.py)."""

    def __init__(self, repo: Repository, view: SubdirView, sections: Sections) -> None:
        self.repo = repo
        self.view = view
        self._sections = sections
        self._removed = frozenset(sections.removed)

    @property
    def stamp(self) -> Hashable:
        return self.view.version

    @property
    def stale(self) -> bool:
        return False

    def names(self) -> Iterable[str]:
        return self.view.by_name.keys()

    def holds(self, name: str) -> bool:
        return name in self.view.by_name

    def records(self, name: str) -> NameRecords:
        return name_records(self._sections, self.view.by_name.get(name, ()), self._removed)

    def name_stamp(self, name: str) -> Hashable:
        return (self.view.name_serials.get(name, 0), self.view.patch_serial)

    def extras(self, name: str) -> Mapping[str, bytes]:
        live = self.view.live
        return {f: live[f].extra for f in self.view.by_name.get(name, ()) if f in live}


def name_records(
    sections: Sections, filenames: Iterable[str], removed: frozenset[str]
) -> NameRecords:
    listed = list(filenames)
    return NameRecords(
        {f: sections.packages[f] for f in listed if f in sections.packages},
        {f: sections.packages_conda[f] for f in listed if f in sections.packages_conda},
        frozenset(f for f in listed if f in removed),
    )


def apply(view: SubdirView, changes: list[artifact_store.CondaChange]) -> SubdirView:
    live = dict(view.live)
    tombstones = dict(view.tombstones)
    by_name = dict(view.by_name)
    name_serials = dict(view.name_serials)
    serial = view.serial
    for change in changes:
        serial = max(serial, change.serial)
        name_serials[change.name] = max(name_serials.get(change.name, 0), change.serial)
        by_name[change.name] = by_name.get(change.name, frozenset()) | {change.filename}
        if change.deleted or change.record is None:
            live.pop(change.filename, None)
            tombstones[change.filename] = change.name
        else:
            extra = orjson.dumps(change.extra or {})
            live[change.filename] = Entry(change.name, change.record, extra)
    return replace(
        view,
        serial=serial,
        live=live,
        tombstones=tombstones,
        by_name=by_name,
        name_serials=name_serials,
    )


def split(records: Mapping[str, bytes]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    packages: dict[str, bytes] = {}
    packages_conda: dict[str, bytes] = {}
    for filename, data in records.items():
        (packages_conda if filename.endswith(".conda") else packages)[filename] = data
    return packages, packages_conda
