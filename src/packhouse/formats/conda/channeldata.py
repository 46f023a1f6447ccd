"""channeldata.json, per conda-index's `_update_channeldata` (channeldata_version 1).

Per package name: `subdirs`, `version` (newest), the about fields (description, dev_url,
doc_url, doc_source_url, home, license, source_url, source_git_url, summary, icon_url,
icon_hash, tags, identifiers, keywords, recipe_origin) from the newest version that has them,
the post-install flags (binary_prefix, text_prefix, activate.d, deactivate.d, pre_link,
post_link, pre_unlink; true if any build has them), `run_exports` as `{version: run_exports}`,
and `timestamp` in seconds. Null values are left out, as conda-index leaves them out.

Differences from conda-index, on purpose: it is rebuilt from all records every time instead
of merged into the previous file; `timestamp` is the newest of all builds (conda-index takes
the last build it happens to visit); recipe-derived `source_*` fields are not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packhouse.formats.conda.records import CHANNELDATA_ABOUT_KEYS, dumps
from packhouse.formats.conda.version import version_key

__all__ = [
    "CHANNELDATA_VERSION",
    "ChannelEntry",
    "assemble_channeldata",
    "build_channeldata",
    "channeldata_package",
]

CHANNELDATA_VERSION = 1
_FLAGS = (
    "binary_prefix",
    "text_prefix",
    "activate.d",
    "deactivate.d",
    "pre_link",
    "post_link",
    "pre_unlink",
)


@dataclass(frozen=True)
class ChannelEntry:
    subdir: str
    filename: str
    record: Mapping[str, Any]  # the (patched) repodata record
    extra: Mapping[str, Any]  # PackageRecord.extra(): about, post_install, run_exports


def _seconds(timestamp: int) -> int:
    return timestamp // 1000 if timestamp > 253402300799 else timestamp


def channeldata_package(entries: Iterable[ChannelEntry]) -> dict[str, Any]:
    """The channeldata.json value for one package name, from all its records in all subdirs."""
    # One entry per (subdir, version): the newest build; a .tar.bz2 with a .conda twin is
    # skipped, as conda-index does.
    all_entries = list(entries)
    conda_stems = {
        (e.subdir, e.filename[:-6]) for e in all_entries if e.filename.endswith(".conda")
    }
    groups: dict[tuple[str, str], ChannelEntry] = {}
    for entry in all_entries:
        if (
            entry.filename.endswith(".tar.bz2")
            and (entry.subdir, entry.filename[:-8]) in conda_stems
        ):
            continue
        group_key = (entry.subdir, str(entry.record["version"]))
        current = groups.get(group_key)
        if current is None or int(current.record.get("timestamp") or 0) < int(
            entry.record.get("timestamp") or 0
        ):
            groups[group_key] = entry
    keyed = [
        (version_key(str(e.record["version"])), int(e.record.get("timestamp") or 0), i, e)
        for i, e in enumerate(groups.values())
    ]
    keyed.sort(key=lambda item: (item[0], item[1], item[2]))
    data: dict[str, Any] = {}
    flags = dict.fromkeys(_FLAGS, False)
    run_exports: dict[str, Any] = {}
    package_subdirs: set[str] = set()
    timestamp = 0
    for _, _, _, entry in keyed:  # oldest first: newer values overwrite
        about = {**entry.extra.get("about", {}), "license": entry.record.get("license")}
        for key in (*CHANNELDATA_ABOUT_KEYS, "version"):
            value = entry.record.get(key) if key == "version" else about.get(key)
            if value:
                data[key] = value
        for flag in _FLAGS:
            flags[flag] = flags[flag] or bool(entry.extra.get("post_install", {}).get(flag))
        if entry.extra.get("run_exports"):
            run_exports[str(entry.record["version"])] = entry.extra["run_exports"]
        package_subdirs.add(entry.subdir)
        timestamp = max(timestamp, _seconds(int(entry.record.get("timestamp") or 0)))
    return {
        **data,
        **flags,
        "run_exports": run_exports,
        "subdirs": sorted(package_subdirs),
        "timestamp": timestamp,
    }


def assemble_channeldata(
    packages: Mapping[str, Mapping[str, Any]], subdirs: Iterable[str]
) -> bytes:
    """channeldata.json from `{name: channeldata_package(...)}`."""
    return dumps(
        {
            "channeldata_version": CHANNELDATA_VERSION,
            "packages": {name: packages[name] for name in sorted(packages)},
            "subdirs": sorted(set(subdirs)),
        }
    )


def build_channeldata(entries: Iterable[ChannelEntry], subdirs: Iterable[str]) -> bytes:
    """channeldata.json from every record of the channel."""
    by_name: dict[str, list[ChannelEntry]] = {}
    for entry in entries:
        by_name.setdefault(str(entry.record["name"]), []).append(entry)
    packages = {name: channeldata_package(group) for name, group in by_name.items()}
    return assemble_channeldata(packages, subdirs)
