"""Assemble a subdir's repodata.json, current_repodata.json, run_exports.json, and compress.

conda-index writes repodata with `json.dumps(sort_keys=True, separators=(",", ":"))`: compact,
keys in order `info`, `packages`, `packages.conda`, `removed`, `repodata_version` (1; 2 when a
`base_url` is set, per CEP 15). Here the same document is made by concatenating each record's
JSON bytes (serialised once by `records.dumps`) in filename order, without re-parsing them.
"""

from __future__ import annotations

import bz2
from collections.abc import Iterable, Mapping
from typing import Any

import zstandard

from packhouse.formats.conda.matchspec import InvalidSpec, MatchSpec
from packhouse.formats.conda.records import dumps
from packhouse.formats.conda.version import InvalidVersion, VersionOrder, version_key

__all__ = [
    "REPODATA_VERSION",
    "assemble_repodata",
    "compress_bz2",
    "compress_zst",
    "current_repodata",
    "run_exports_json",
]

REPODATA_VERSION = 1
RUN_EXPORTS_VERSION = 1
ZSTD_LEVEL = 16  # conda-index's choice for repodata.json.zst


def _section(records: Mapping[str, bytes]) -> bytes:
    parts = [b"{"]
    for index, filename in enumerate(sorted(records)):
        if index:
            parts.append(b",")
        parts.append(dumps(filename))
        parts.append(b":")
        parts.append(records[filename])
    parts.append(b"}")
    return b"".join(parts)


def assemble_repodata(
    subdir: str,
    packages: Mapping[str, bytes],
    packages_conda: Mapping[str, bytes],
    removed: Iterable[str] = (),
    *,
    base_url: str | None = None,
) -> bytes:
    """repodata.json bytes from `{filename: record JSON bytes}` for `.tar.bz2` and `.conda`."""
    info: dict[str, str] = {"subdir": subdir}
    version = REPODATA_VERSION
    if base_url:
        info["base_url"] = f"{base_url.rstrip('/')}/{subdir}/"
        version = 2
    return b"".join(
        (
            b'{"info":',
            dumps(info),
            b',"packages":',
            _section(packages),
            b',"packages.conda":',
            _section(packages_conda),
            b',"removed":',
            dumps(sorted(set(removed))),
            b',"repodata_version":',
            str(version).encode(),
            b"}",
        )
    )


def compress_zst(data: bytes, level: int = ZSTD_LEVEL) -> bytes:
    return zstandard.ZstdCompressor(level=level, threads=-1).compress(data)


def compress_bz2(data: bytes) -> bytes:
    return bz2.compress(data)


def run_exports_json(
    subdir: str,
    packages: Mapping[str, Mapping[str, Any]],
    packages_conda: Mapping[str, Mapping[str, Any]],
) -> bytes:
    """CEP 12 run_exports.json: `{filename: {"run_exports": {...}}}` per section."""
    return dumps(
        {
            "info": {"subdir": subdir, "version": RUN_EXPORTS_VERSION},
            "packages": {fn: {"run_exports": dict(v)} for fn, v in packages.items()},
            "packages.conda": {fn: {"run_exports": dict(v)} for fn, v in packages_conda.items()},
        }
    )


def _has_features(record: Mapping[str, Any]) -> bool:
    return bool(record.get("track_features") or record.get("features"))


def _solver_order(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """conda's `Resolve.version_key` for one channel: version, build number, non-noarch first,
    timestamp, build string; sorted descending."""
    return (
        version_key(str(record.get("version", ""))),
        record.get("build_number", 0) if isinstance(record.get("build_number"), int) else 0,
        -int(record.get("subdir") == "noarch"),
        record.get("timestamp", 0) if isinstance(record.get("timestamp"), int | float) else 0,
        str(record.get("build", "")),
    )


def _back_filled(
    kept: dict[str, list[tuple[str, dict[str, Any]]]],
    groups: dict[str, list[tuple[str, dict[str, Any]]]],
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """`kept` with, for each dependency of a kept record that no kept record satisfies, every
    record of the newest version in `groups` (solver order) that satisfies it."""
    expanded = {name: list(records) for name, records in kept.items()}
    seen: set[str] = set()
    for records in kept.values():
        for _, record in records:
            for dependency in record.get("depends") or ():
                if not isinstance(dependency, str) or dependency in seen:
                    continue
                seen.add(dependency)
                try:
                    spec = MatchSpec.parse(dependency)
                except InvalidSpec:
                    continue
                if any(spec.match(r) for _, r in kept.get(spec.name, ())):
                    continue
                match = next((r for _, r in groups.get(spec.name, ()) if spec.match(r)), None)
                if match is None:
                    continue
                version = str(match.get("version", ""))
                have = {fn for fn, _ in expanded.get(spec.name, ())}
                expanded.setdefault(spec.name, []).extend(
                    (fn, r)
                    for fn, r in groups[spec.name]
                    if fn not in have and _starts_with(str(r.get("version", "")), version)
                )
    return expanded


def _starts_with(version: str, prefix: str) -> bool:
    try:
        return VersionOrder(version).startswith(VersionOrder(prefix))
    except InvalidVersion:
        return version == prefix


def current_repodata(
    subdir: str,
    repodata: Mapping[str, Any],
    pins: Mapping[str, Iterable[str]] | None = None,
) -> bytes:
    """current_repodata.json, as conda-index's `build_current_repodata` keeps it.

    conda reads the subdir first (a `.tar.bz2` whose `.conda` twin exists is left out), groups
    records by name in solver order, and keeps, per name, every record matching
    `name=<newest version>` (a prefix match: `1.1a1` matches `=1.1`) and `name=<pin>` for each
    pinned version in `pins` (`{"python": ["3.11", "3.12"]}`, conda-index's `-m` file). Then
    the back-fill: each dependency of a kept record that no kept record satisfies brings in
    every record of `name=<newest version satisfying it>` (one pass: what that brings in is
    not back-filled in turn; a dependency conda cannot parse is skipped). Last, for a name
    whose kept records carry features, the first feature-less record not newer.
    Each kept `.conda` record gains `legacy_bz2_md5`: its `.tar.bz2` twin's md5, or null.
    """
    packages: Mapping[str, dict[str, Any]] = repodata.get("packages", {})
    packages_conda: Mapping[str, dict[str, Any]] = repodata.get("packages.conda", {})
    conda_stems = {fn[: -len(".conda")] for fn in packages_conda}
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for filename, record in packages.items():
        if filename[: -len(".tar.bz2")] not in conda_stems:
            groups.setdefault(str(record.get("name")), []).append((filename, record))
    for filename, record in packages_conda.items():
        groups.setdefault(str(record.get("name")), []).append((filename, record))
    pins = pins or {}
    newest: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, group in groups.items():
        group.sort(key=lambda item: _solver_order(item[1]), reverse=True)
        versions = [str(group[0][1].get("version", ""))]
        for pin in pins.get(name, ()):
            pinned = [r for _, r in group if _starts_with(str(r.get("version", "")), str(pin))]
            if pinned:
                versions.append(str(pinned[0].get("version", "")))
        newest[name] = [
            (fn, r)
            for fn, r in group
            if any(_starts_with(str(r.get("version", "")), v) for v in versions)
        ]
    kept = _back_filled(newest, groups)
    keep = {fn for records in kept.values() for fn, _ in records}
    for name, records in kept.items():
        if any(_has_features(r) for _, r in records):
            latest = max(version_key(str(r.get("version", ""))) for _, r in records)
            for fn, r in groups[name]:
                if version_key(str(r.get("version", ""))) <= latest and not _has_features(r):
                    keep.add(fn)
                    break
    result: dict[str, Any] = {
        k: v for k, v in repodata.items() if k not in ("packages", "packages.conda")
    }
    result["packages"] = {fn: packages[fn] for fn in packages if fn in keep}
    conda_kept: dict[str, Any] = {}
    for filename, record in packages_conda.items():
        if filename in keep:
            twin = packages.get(filename[: -len(".conda")] + ".tar.bz2")
            conda_kept[filename] = {**record, "legacy_bz2_md5": twin.get("md5") if twin else None}
    result["packages.conda"] = conda_kept
    return dumps(result)
