"""CEP 16 sharded repodata: one zstd-compressed msgpack shard per package name, and an index.

Index `repodata_shards.msgpack.zst`: `{"version": 1, "info": {"base_url", "shards_base_url",
"subdir", ["created_at"]}, "shards": {name: sha256 digest as 32 raw bytes}}`. A shard
`{"packages": {...}, "packages.conda": {...}, "removed": [...]}` holds every record of one
name, with `md5` and `sha256` as raw bytes (CEP 16); its file is
`<hex sha256 of the compressed shard>.msgpack.zst`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
import orjson
import zstandard

__all__ = [
    "SHARDS_FROM_PACKAGES_FILENAME",
    "SHARDS_INDEX_FILENAME",
    "Shard",
    "build_shard",
    "build_shards_index",
    "index_shard",
    "pack_record",
    "shard_of",
]

SHARDS_INDEX_FILENAME = "repodata_shards.msgpack.zst"
# conda-index also writes the unpatched shard index beside the patched one.
SHARDS_FROM_PACKAGES_FILENAME = "repodata_shards_from_packages.msgpack.zst"
SHARDS_VERSION = 1
ZSTD_LEVEL = 3  # shards are small; higher levels cost time for little gain


@dataclass(frozen=True)
class Shard:
    name: str
    digest: bytes  # sha256 of `data`
    data: bytes  # the compressed shard

    @property
    def filename(self) -> str:
        return f"{self.digest.hex()}.msgpack.zst"


def pack_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A repodata record with hex md5/sha256 turned into bytes, as CEP 16 stores them."""
    packed = dict(record)
    for key in ("md5", "sha256"):
        value = packed.get(key)
        if isinstance(value, str):
            packed[key] = bytes.fromhex(value)
    return packed


def _packed_section(records: Mapping[str, bytes | Mapping[str, Any]]) -> dict[str, Any]:
    section: dict[str, Any] = {}
    for filename in sorted(records):
        value = records[filename]
        record = orjson.loads(value) if isinstance(value, bytes) else value
        section[filename] = pack_record(record)
    return section


def shard_of(name: str, payload: Mapping[str, Any]) -> Shard:
    """The compressed shard file for a shard document."""
    raw = msgpack.packb(payload, use_bin_type=True)
    data = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw)
    return Shard(name, hashlib.sha256(data).digest(), data)


def index_shard(
    name: str,
    packages: Mapping[str, bytes],
    packages_conda: Mapping[str, bytes],
    run_exports: Mapping[str, Mapping[str, Any]],
    removed: Iterable[str] = (),
) -> Shard:
    """A shard as conda-index 0.13 writes it: every record also carries its `run_exports`
    (`{}` when the package has none), after its other keys, and `removed` is there only when
    a patch removed something."""
    sections: list[dict[str, Any]] = [{}, {}]
    for section, records in zip(sections, (packages, packages_conda), strict=True):
        for filename in sorted(records):
            record = pack_record(orjson.loads(records[filename]))
            record["run_exports"] = dict(run_exports.get(filename) or {})
            section[filename] = record
    payload: dict[str, Any] = {"packages": sections[0], "packages.conda": sections[1]}
    gone = sorted(set(removed))
    if gone:
        payload["removed"] = gone
    return shard_of(name, payload)


def build_shard(
    name: str,
    packages: Mapping[str, bytes | Mapping[str, Any]],
    packages_conda: Mapping[str, bytes | Mapping[str, Any]],
    removed: Iterable[str] = (),
) -> Shard:
    """One name's shard, from its records (JSON bytes or dicts) by filename."""
    payload = {
        "packages": _packed_section(packages),
        "packages.conda": _packed_section(packages_conda),
        "removed": sorted(set(removed)),
    }
    return shard_of(name, payload)


def build_shards_index(
    subdir: str,
    shards: Mapping[str, bytes],
    *,
    base_url: str = "./",
    shards_base_url: str = "./",
    created_at: str | None = None,
) -> bytes:
    """The compressed shard index from `{name: digest}`; `created_at` only when given."""
    info: dict[str, Any] = {
        "base_url": base_url,
        "shards_base_url": shards_base_url,
        "subdir": subdir,
    }
    if created_at is not None:
        info["created_at"] = created_at
    payload = {
        "version": SHARDS_VERSION,
        "info": info,
        "shards": {name: shards[name] for name in sorted(shards)},
    }
    raw = msgpack.packb(payload, use_bin_type=True)
    return bytes(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw))
