"""The pages of a conda order with proxies, written name by name to files: repodata.json
(and current_repodata.json), run_exports.json, a subdir's index.html, channeldata.json with
the channel's index.html.

Every one is made from `resolved()` (services/conda_order.py), the one resolution the
repodata and the shards are made from, so they list the same records: own, bases
depth-first, proxies last, the confusion rule, the cooldowns. Only the names of a subdir and
one name's records are in memory at a time (a proxy's subdir may hold hundreds of thousands
of records); a section that must come after another is written to a scratch file and
appended.
"""

from __future__ import annotations

import heapq
import itertools
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from packhouse.db.repository_store import Repository
from packhouse.formats.conda.channeldata import (
    CHANNELDATA_VERSION,
    ChannelEntry,
    channeldata_package,
)
from packhouse.formats.conda.html import (
    TAIL,
    channel_index_head,
    channel_index_row,
    subdir_index_head,
    subdir_index_row,
)
from packhouse.formats.conda.records import dumps
from packhouse.formats.conda.repodata import RUN_EXPORTS_VERSION
from packhouse.services.conda_order import (
    NameRecords,
    SubdirSource,
    merged_current,
    resolved,
    winning_extras,
)

Sections = tuple[Mapping[str, bytes], Mapping[str, bytes]]  # packages, packages.conda


@contextmanager
def scratch_file(tmp_dir: Path) -> Iterator[BinaryIO]:
    path = tmp_dir / f"conda-page-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        with path.open("w+b") as scratch:
            yield scratch
    finally:
        path.unlink(missing_ok=True)


def _write_sections(out: BinaryIO, tmp_dir: Path, parts: Iterable[Sections]) -> None:
    """`"packages":{...},"packages.conda":{...}` from parts of both, `packages` written
    straight to `out`, `packages.conda` to a scratch file appended after it."""
    out.write(b'"packages":{')
    first = [True, True]
    with scratch_file(tmp_dir) as scratch:
        for part in parts:
            for index, (section, target) in enumerate(zip(part, (out, scratch), strict=True)):
                for filename in sorted(section):
                    target.write(b"" if first[index] else b",")
                    first[index] = False
                    target.write(dumps(filename) + b":" + section[filename])
        out.write(b'},"packages.conda":{')
        scratch.seek(0)
        shutil.copyfileobj(scratch, out, 1 << 20)
    out.write(b"}")


def write_repodata(
    out: BinaryIO,
    tmp_dir: Path,
    order: Sequence[Repository],
    subdir: str,
    sources: Sequence[SubdirSource],
    current: bool,
) -> None:
    """repodata.json (or, `current`, current_repodata.json) of the order."""
    removed: set[str] = set()

    def parts() -> Iterator[Sections]:
        for _, _, records in resolved(order, sources):
            if current:
                records = _current(subdir, records)
            removed.update(records.removed)
            yield records.packages, records.packages_conda

    out.write(b'{"info":' + dumps({"subdir": subdir}) + b",")
    _write_sections(out, tmp_dir, parts())
    out.write(b',"removed":' + dumps(sorted(removed)) + b',"repodata_version":1}')


def _current(subdir: str, records: NameRecords) -> NameRecords:
    """One name's records as current_repodata.json keeps them."""
    if not records.packages and not records.packages_conda:
        return NameRecords()
    doc = orjson.loads(merged_current(subdir, records.packages, records.packages_conda, []))
    return NameRecords(
        {f: dumps(r) for f, r in doc["packages"].items()},
        {f: dumps(r) for f, r in doc["packages.conda"].items()},
    )


def write_run_exports(
    out: BinaryIO,
    tmp_dir: Path,
    order: Sequence[Repository],
    subdir: str,
    sources: Sequence[SubdirSource],
) -> None:
    """run_exports.json (as formats/conda/repodata.py `run_exports_json` writes it) of every
    record the order's repodata lists, each with the run_exports of the member it came from:
    a hosted package's own, an upstream's as it serves them (`{}` where it says none)."""

    def parts() -> Iterator[Sections]:
        for name, members, records in resolved(order, sources):
            extras = winning_extras(members, name, records)
            values = {f: dumps({"run_exports": _run_exports(e)}) for f, e in extras.items()}
            yield (
                {f: values[f] for f in records.packages},
                {f: values[f] for f in records.packages_conda},
            )

    out.write(b'{"info":' + dumps({"subdir": subdir, "version": RUN_EXPORTS_VERSION}) + b",")
    _write_sections(out, tmp_dir, parts())
    out.write(b"}")


def _run_exports(extra: bytes) -> dict[str, Any]:
    value = orjson.loads(extra).get("run_exports")
    return value if isinstance(value, dict) else {}


def write_subdir_index(
    out: BinaryIO,
    order: Sequence[Repository],
    sources: Sequence[SubdirSource],
    title: str,
    listed: list[str],
) -> None:
    """A subdir's index.html: the index files, then every package file the repodata lists."""
    out.write(subdir_index_head(title, listed).encode())
    for _, _, records in resolved(order, sources):
        section = {**records.packages, **records.packages_conda}
        for filename in sorted(section):
            out.write(subdir_index_row(filename, orjson.loads(section[filename])).encode())
    out.write(TAIL.encode())


def _tagged(
    subdir: str, names: Iterator[tuple[str, list[SubdirSource], NameRecords]]
) -> Iterator[tuple[str, str, list[SubdirSource], NameRecords]]:
    for name, members, records in names:
        yield name, subdir, members, records


def write_channeldata(
    out: BinaryIO,
    html: BinaryIO,
    tmp_dir: Path,
    title: str,
    order: Sequence[Repository],
    by_subdir: Mapping[str, Sequence[SubdirSource]],
) -> None:
    """channeldata.json (formats/conda/channeldata.py, byte for byte as `build_channeldata`
    writes it) and the channel's index.html, from every subdir's resolution: names merged
    across subdirs in order, one name's records of all subdirs in memory at a time."""
    streams = [_tagged(subdir, resolved(order, by_subdir[subdir])) for subdir in sorted(by_subdir)]
    used = {"noarch"}
    out.write(b'{"channeldata_version":' + dumps(CHANNELDATA_VERSION) + b',"packages":{')
    first = True
    with scratch_file(tmp_dir) as rows:
        merged = heapq.merge(*streams, key=lambda item: item[0])
        for name, group in itertools.groupby(merged, key=lambda item: item[0]):
            entries = []
            for _, subdir, members, records in group:
                extras = winning_extras(members, name, records)
                for filename, record in (
                    *records.packages.items(),
                    *records.packages_conda.items(),
                ):
                    extra = orjson.loads(extras.get(filename, b"{}"))
                    entries.append(ChannelEntry(subdir, filename, orjson.loads(record), extra))
                    used.add(subdir)
            if not entries:
                continue
            package = channeldata_package(entries)
            out.write((b"" if first else b",") + dumps(name) + b":" + dumps(package))
            first = False
            rows.write(channel_index_row(name, package).encode())
        out.write(b'},"subdirs":' + dumps(sorted(used)) + b"}")
        html.write(channel_index_head(title, sorted(used)).encode())
        rows.seek(0)
        shutil.copyfileobj(rows, html, 1 << 20)
    html.write(TAIL.encode())
