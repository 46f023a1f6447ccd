"""Reading a conda repository through its resolution order (services/sources.py).

A repository with bases, or a proxy, is read member by member: its own records, its bases
depth-first, proxies last. For each package name of a subdir, `resolve()` picks the members
that answer (the dependency-confusion rule: a name held by any hosted member of the order
gets nothing from a proxy of that subdir, unless `allow_upstream` lists it), and the first
member to hold a filename wins. Each member is a `SubdirSource`: a hosted repository's
`SubdirView` (services/conda_reads.py), or a proxy's cached upstream subdir
(services/conda_proxy.py).

Pages are rendered once per change, keyed by the stamps of every member (a hosted member's
view version, a proxy's cached document and cooldown state); shards are rebuilt only for a
name whose members' stamps moved.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from packhouse.db.repository_store import Repository
from packhouse.formats.conda.repodata import current_repodata
from packhouse.formats.conda.shards import Shard, build_shard
from packhouse.services.sources import first_wins, resolve
from packhouse.types import RepoKind

RETIRED_SHARDS = 4096  # superseded shards still served, for clients holding an older index


@dataclass(frozen=True)
class NameRecords:
    """One package name's records in one subdir, as one source (or a merge) has them."""

    packages: Mapping[str, bytes] = field(default_factory=dict)  # .tar.bz2: record JSON
    packages_conda: Mapping[str, bytes] = field(default_factory=dict)  # .conda
    removed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.packages or self.packages_conda or self.removed)


EMPTY = NameRecords()


class SubdirSource(Protocol):
    """One member of an order, for one subdir."""

    @property
    def repo(self) -> Repository: ...

    @property
    def stamp(self) -> Hashable:
        """Changes whenever anything this source answers changes."""
        ...

    @property
    def stale(self) -> bool:
        """Answers come from a cached copy the upstream could not confirm."""
        ...

    def names(self) -> Iterable[str]:
        """Every name the source holds in the subdir (for a hosted one: live or deleted)."""
        ...

    def holds(self, name: str) -> bool: ...

    def records(self, name: str) -> NameRecords: ...

    def name_stamp(self, name: str) -> Hashable:
        """Changes whenever `records(name)` does."""
        ...

    def extras(self, name: str) -> Mapping[str, bytes]:
        """{filename: JSON of what a record does not carry (`about`, `post_install`,
        `run_exports`)} for the name's records, `{}` where nothing is known."""
        ...


@dataclass(frozen=True)
class Merged:
    """A subdir as an order shows it: every name's records, merged."""

    by_name: Mapping[str, NameRecords]
    name_stamps: Mapping[str, Hashable]
    stale: bool

    def sections(self) -> tuple[dict[str, bytes], dict[str, bytes], list[str]]:
        packages = first_wins(r.packages for r in self.by_name.values())
        packages_conda = first_wins(r.packages_conda for r in self.by_name.values())
        removed = {f for r in self.by_name.values() for f in r.removed}
        return packages, packages_conda, sorted(removed - packages.keys() - packages_conda.keys())


def answering(
    order: Sequence[Repository], sources: Sequence[SubdirSource], name: str
) -> list[SubdirSource]:
    """The sources that answer for `name`, in order (the confusion rule applied)."""
    holders = [s.repo.id for s in sources if s.repo.kind is not RepoKind.PROXY and s.holds(name)]
    resolution = resolve(order, name, holders)
    by_id = {s.repo.id: s for s in sources}
    return [by_id[r.id] for r in resolution.members if r.id in by_id]


def merge_name(parts: Sequence[NameRecords]) -> NameRecords:
    """One name's records across the sources that answer: the first to hold a filename
    wins; a filename another source still holds is not listed as removed."""
    if len(parts) == 1:
        return parts[0]
    packages = first_wins(p.packages for p in parts)
    packages_conda = first_wins(p.packages_conda for p in parts)
    removed = frozenset().union(*(p.removed for p in parts))
    return NameRecords(packages, packages_conda, removed - packages.keys() - packages_conda.keys())


def answers(
    order: Sequence[Repository], sources: Sequence[SubdirSource]
) -> Iterator[tuple[str, list[SubdirSource]]]:
    """(name, the sources that answer for it) for every name of the sources, sorted."""
    for name in sorted(set().union(*(set(s.names()) for s in sources))):
        members = answering(order, sources, name)
        if members:
            yield name, members


def resolved(
    order: Sequence[Repository], sources: Sequence[SubdirSource]
) -> Iterator[tuple[str, list[SubdirSource], NameRecords]]:
    """The one resolution of a subdir every page of an order is made from (repodata,
    shards, run_exports.json, index.html, channeldata.json): (name, the sources that
    answer, its merged records) for every name with records, sorted by name, one name in
    memory at a time."""
    for name, members in answers(order, sources):
        merged = merge_name([r for m in members if (r := m.records(name))])
        if merged:
            yield name, members, merged


def name_stamp(members: Sequence[SubdirSource], name: str) -> Hashable:
    return tuple((m.repo.id, m.name_stamp(name)) for m in members)


def winning_extras(
    members: Sequence[SubdirSource], name: str, records: NameRecords
) -> dict[str, bytes]:
    """{filename: extras JSON} of the member whose record won each filename (members give
    an entry for every record they hold, so the first to hold a filename wins here too)."""
    wanted = records.packages.keys() | records.packages_conda.keys()
    found = first_wins(m.extras(name) for m in members)
    return {f: found.get(f, b"{}") for f in wanted}


def merge(order: Sequence[Repository], sources: Sequence[SubdirSource]) -> Merged:
    by_name: dict[str, NameRecords] = {}
    stamps: dict[str, Hashable] = {}
    for name, members, merged in resolved(order, sources):
        by_name[name] = merged
        stamps[name] = name_stamp(members, name)
    return Merged(by_name, stamps, any(s.stale for s in sources))


def merged_current(
    subdir: str,
    packages: Mapping[str, bytes],
    packages_conda: Mapping[str, bytes],
    removed: Sequence[str],
) -> bytes:
    """current_repodata.json from a subdir's sections (repodata.py's rule)."""
    doc = {
        "info": {"subdir": subdir},
        "packages": {f: orjson.loads(r) for f, r in packages.items()},
        "packages.conda": {f: orjson.loads(r) for f, r in packages_conda.items()},
        "removed": list(removed),
        "repodata_version": 1,
    }
    return current_repodata(subdir, doc)


class ShardKeeper:
    """The shards of one (repository, subdir) as an order shows it: rebuilt only for a name
    whose stamp moved, and superseded ones kept a while for clients holding an older
    index."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._current: dict[str, tuple[Hashable, Shard]] = {}
        self._by_hex: OrderedDict[str, bytes] = OrderedDict()

    def digests(
        self, stamps: Mapping[str, Hashable], records: Callable[[str], NameRecords]
    ) -> dict[str, bytes]:
        """{name: shard digest} for every name of `stamps`, building `records(name)`'s
        shard only for a name whose stamp moved."""
        digests: dict[str, bytes] = {}
        with self.lock:
            for name, stamp in stamps.items():
                kept = self._current.get(name)
                if kept is None or kept[0] != stamp:
                    found = records(name)
                    shard = build_shard(name, found.packages, found.packages_conda, found.removed)
                    kept = (stamp, shard)
                    self._current[name] = kept
                    self._by_hex[shard.digest.hex()] = shard.data
                    self._by_hex.move_to_end(shard.digest.hex())
                digests[name] = kept[1].digest
            for gone in self._current.keys() - stamps.keys():
                del self._current[gone]
            live = {shard.digest.hex() for _, shard in self._current.values()}
            excess = len(self._by_hex) - len(live) - RETIRED_SHARDS
            for hex_digest in list(self._by_hex):
                if excess <= 0:
                    break
                if hex_digest not in live:
                    del self._by_hex[hex_digest]
                    excess -= 1
        return digests

    def get(self, hex_digest: str) -> bytes | None:
        return self._by_hex.get(hex_digest)
