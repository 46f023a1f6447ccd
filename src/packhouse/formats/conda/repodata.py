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

from packhouse.formats.conda.records import dumps
from packhouse.formats.conda.version import version_key

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


def current_repodata(subdir: str, repodata: Mapping[str, Any]) -> bytes:
    """current_repodata.json: the newest version of each name, as conda-index keeps it.

    Kept: every build of each name's newest version (conda's `name=version`), and for a name
    whose newest records carry features, the newest feature-less version not above it.
    Each kept `.conda` record gains `legacy_bz2_md5`: its `.tar.bz2` twin's md5, or null.
    Simplification: conda-index also back-fills dependencies that no kept record satisfies
    (it runs conda's solver index); that is not done here.
    """
    packages: Mapping[str, dict[str, Any]] = repodata.get("packages", {})
    packages_conda: Mapping[str, dict[str, Any]] = repodata.get("packages.conda", {})
    by_name: dict[str, list[tuple[Any, str, dict[str, Any]]]] = {}
    for section in (packages, packages_conda):
        for filename, record in section.items():
            by_name.setdefault(record["name"], []).append(
                (version_key(str(record["version"])), filename, record)
            )
    keep: set[str] = set()
    for group in by_name.values():
        newest = max(item[0] for item in group)
        latest = [item for item in group if item[0] == newest]
        keep.update(item[1] for item in latest)
        if any(_has_features(item[2]) for item in latest):
            plain = [item for item in group if item[0] <= newest and not _has_features(item[2])]
            if plain:
                best = max(item[0] for item in plain)
                keep.update(item[1] for item in plain if item[0] == best)
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
