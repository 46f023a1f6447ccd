"""The repodata record of a package, built exactly as conda-index builds it.

conda-index (`conda_index/index/cache.py`, `extract_to_cache_unconditional`) takes
`info/index.json` as written by the build tool, drops the keys in `DROPPED_KEYS`, and adds
`md5`, `sha256` and `size` computed from the file; every other key (depends, constrains,
license, license_family, subdir, timestamp, noarch, track_features, features, requires,
python_site_packages_path, ...) is kept as found. It then writes records with
`json.dumps(sort_keys=True)`. Here each record is serialised once, with sorted keys, by orjson;
those bytes are what the server stores and what repodata is assembled from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from packhouse.errors import InvalidUpload
from packhouse.formats.conda.archive import Digests, PackageContents

__all__ = [
    "CHANNELDATA_ABOUT_KEYS",
    "DROPPED_KEYS",
    "PackageRecord",
    "build_record",
    "dumps",
    "make_record",
    "with_indexed_timestamp",
]

# conda-index's `filter_fields`: build-machine details that never reach repodata.json.
DROPPED_KEYS = frozenset(
    {
        "arch",
        "has_prefix",
        "mtime",
        "platform",
        "ucs",
        "requires_features",
        "binstar",
        "target-triplet",
        "machine",
        "operatingsystem",
    }
)

# about.json keys conda-index copies into channeldata.json ("keep newer value" fields).
CHANNELDATA_ABOUT_KEYS = (
    "description",
    "dev_url",
    "doc_url",
    "doc_source_url",
    "home",
    "license",
    "source_url",
    "source_git_url",
    "summary",
    "icon_url",
    "icon_hash",
    "tags",
    "identifiers",
    "keywords",
    "recipe_origin",
)


def dumps(value: Any) -> bytes:
    """Compact JSON with sorted keys: the one serialiser for records and repodata parts."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def build_record(index: Mapping[str, Any], digests: Digests) -> dict[str, Any]:
    """index.json minus DROPPED_KEYS, plus md5, sha256 and size (ours, never index.json's)."""
    record = {key: value for key, value in index.items() if key not in DROPPED_KEYS}
    record["md5"] = digests.md5
    record["sha256"] = digests.sha256
    record["size"] = digests.size
    return record


def _channel_extra(contents: PackageContents) -> dict[str, Any]:
    """What channeldata.json and run_exports.json need beyond the record."""
    about: dict[str, Any] = {}
    for key in CHANNELDATA_ABOUT_KEYS:
        value = contents.about.get(key)
        if key in ("description", "summary") and value is not None:
            # conda-index's _clear_newline_chars: a list of strings is joined first
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                value = "".join(value)
            if isinstance(value, str):
                value = value.strip().replace("\n", " ")
        if value is not None:
            about[key] = value
    return {
        "about": about,
        "post_install": dict(contents.post_install),
        "run_exports": contents.run_exports,
    }


@dataclass(frozen=True)
class PackageRecord:
    """One package's repodata record, serialised once, with the fields Packhouse indexes on."""

    filename: str
    name: str
    version: str
    build: str
    build_number: int
    timestamp: int  # as in index.json (milliseconds for modern packages), 0 if absent
    record_json: bytes  # the repodata.json value for this filename
    extra_json: bytes  # {"about": {...}, "post_install": {...}, "run_exports": {...}}

    @property
    def is_conda_v2(self) -> bool:
        return self.filename.endswith(".conda")

    def record(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.record_json)
        return value

    def extra(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.extra_json)
        return value


def make_record(contents: PackageContents) -> PackageRecord:
    """Build and serialise the record for a package read by `read_package`."""
    record = build_record(contents.index, contents.digests)
    try:
        record_json = dumps(record)
        extra_json = dumps(_channel_extra(contents))
    except TypeError as error:  # e.g. an integer beyond 64 bits
        raise InvalidUpload(
            f"{contents.filename}: info/ metadata cannot be stored: {error}"
        ) from error
    return PackageRecord(
        filename=contents.filename,
        name=record["name"],
        version=record["version"],
        build=record["build"],
        build_number=record["build_number"],
        timestamp=int(record.get("timestamp") or 0),
        record_json=record_json,
        extra_json=extra_json,
    )


def with_indexed_timestamp(record_json: bytes, millis: int) -> bytes:
    """The record with CEP 47 `indexed_timestamp`: Unix time in milliseconds when the package
    entered the channel, set by the channel (never by the build tool, never by a patch)."""
    record = orjson.loads(record_json)
    record["indexed_timestamp"] = int(millis)
    return dumps(record)
