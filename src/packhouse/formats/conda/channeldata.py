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

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from xml.dom import minidom

from packhouse.formats.conda.records import CHANNELDATA_ABOUT_KEYS, dumps
from packhouse.formats.conda.version import version_key

__all__ = [
    "CHANNELDATA_VERSION",
    "POST_INSTALL_FLAGS",
    "ChannelEntry",
    "assemble_channeldata",
    "build_channeldata",
    "channeldata_package",
    "channeldata_rss",
]

CHANNELDATA_VERSION = 1
POST_INSTALL_FLAGS = (
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
    flags = dict.fromkeys(POST_INSTALL_FLAGS, False)
    run_exports: dict[str, Any] = {}
    package_subdirs: set[str] = set()
    timestamp = 0
    for _, _, _, entry in keyed:  # oldest first: newer values overwrite
        about = {**entry.extra.get("about", {}), "license": entry.record.get("license")}
        for key in (*CHANNELDATA_ABOUT_KEYS, "version"):
            value = entry.record.get(key) if key == "version" else about.get(key)
            if value:
                data[key] = value
        for flag in POST_INSTALL_FLAGS:
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


RSS_ITEMS = 100


def _rfc822(seconds: float) -> str:
    return time.strftime("%a, %d %b %Y %T GMT", time.gmtime(seconds))


def channeldata_rss(channel_name: str, channeldata: Mapping[str, Any], now: float) -> str:
    """rss.xml as conda-index writes it beside channeldata.json: the 100 names with the newest
    `timestamp`, one item each (title `name version [subdirs]`, description or summary,
    doc_url, dev_url, source_url, home), pretty-printed by minidom."""
    packages = sorted(
        channeldata.get("packages", {}).items(),
        key=lambda item: item[1].get("timestamp", 0),
        reverse=True,
    )[:RSS_ITEMS]
    document = minidom.getDOMImplementation().createDocument(None, "rss", None)
    rss = document.documentElement
    assert rss is not None  # createDocument made it
    rss.setAttribute("version", "2.0")

    def append(node: minidom.Element, strings: Mapping[str, Any]) -> None:
        for key, value in strings.items():
            element = document.createElement(key)
            element.appendChild(document.createTextNode(str(value)))
            node.appendChild(element)

    channel = document.createElement("channel")
    append(
        channel,
        {
            "title": f"anaconda.org/{channel_name}",
            "link": f"https://conda.anaconda.org/{channel_name}",
            "description": f"The most recent {len(packages)} updates for {channel_name}.",
            "pubDate": _rfc822(now),
            "lastBuildDate": _rfc822(now),
        },
    )
    for name, package in packages:
        description = next(
            (package[k] for k in ("description", "summary") if package.get(k)), "No description."
        )
        subdirs = ", ".join(sorted(set(package.get("subdirs") or [])))
        item = {
            "title": f"{name} {package.get('version')} [{subdirs}]",
            "description": description,
            "link": package.get("doc_url"),
            "comments": package.get("dev_url"),
            "guid": package.get("source_url"),
            "pubDate": _rfc822(package.get("timestamp") or 0),
            "source": package.get("home"),
        }
        element = document.createElement("item")
        append(element, {k: v for k, v in item.items() if v})
        channel.appendChild(element)
    rss.appendChild(channel)
    return document.toprettyxml(indent="  ")
