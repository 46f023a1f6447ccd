"""The files `packhouse conda index` writes for one subdir, and for the channel root.

Every file goes through `write_if_changed` (temporary file, fsync, `os.replace`, skipped when
the bytes are already there), so an unchanged file keeps its mtime and a reader never sees a
partial one. The JSON is conda-index's: sorted keys, compact (or `indent=2` plus a newline
with `--no-compact`); channeldata.json and patch_instructions.json end with a newline.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack
import orjson
import zstandard

from packhouse.formats.conda.channeldata import (
    ChannelEntry,
    assemble_channeldata,
    channeldata_package,
    channeldata_rss,
)
from packhouse.formats.conda.html import (
    TAIL,
    channel_index_html,
    subdir_index_head,
    subdir_index_row,
)
from packhouse.formats.conda.patches import load_patch_instructions, patch_records
from packhouse.formats.conda.repodata import (
    assemble_repodata,
    compress_bz2,
    compress_zst,
    current_repodata,
    run_exports_json,
)
from packhouse.formats.conda.shards import (
    SHARDS_FROM_PACKAGES_FILENAME,
    SHARDS_INDEX_FILENAME,
    build_shards_index,
    index_shard,
)
from packhouse.services.conda_index_cache import (
    ChannelState,
    SubdirCache,
    stat_of,
    write_if_changed,
)

if TYPE_CHECKING:
    from packhouse.services.conda_index import IndexOptions

__all__ = ["PatchGenerator", "SubdirWriter", "Written", "channel_files"]

# (subdir, a function returning the unpatched repodata dict) -> patch instructions
PatchGenerator = Callable[[str, Callable[[], dict[str, Any]]], Mapping[str, Any]]


@dataclass
class Written:
    """Writes files under the output root and lists, relative to it, those that changed."""

    root: Path
    names: list[str]

    def __call__(self, path: Path, data: bytes, *, sync: bool = True) -> Path:
        if write_if_changed(path, data, sync=sync):
            self.names.append(str(path.relative_to(self.root)))
        return path


def _json(data: bytes, compact: bool, newline: bool = False) -> bytes:
    """conda-index's `json_dumps` of a document already serialised compact and sorted."""
    if compact:
        return data + b"\n" if newline else data
    option = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    return orjson.dumps(orjson.loads(data), option=option) + b"\n"


def _created_at(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SubdirWriter:
    def __init__(
        self,
        subdir: SubdirCache,
        options: IndexOptions,
        out: Path,
        channel_name: str,
        now: float,
        write: Written,
    ) -> None:
        self.subdir = subdir
        self.options = options
        self.folder = out / subdir.name
        self.channel_name = channel_name
        self.now = now
        self.write_file = write
        self.paths: list[Path] = []
        self._last_compressed: dict[str, tuple[bytes, bytes]] = {}

    def _put(self, name: str, data: bytes) -> bool:
        path = self.folder / name
        before = list(self.write_file.names)
        self.write_file(path, data)
        self.paths.append(path)
        return self.write_file.names != before

    def _remove(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)

    def _put_json(self, name: str, data: bytes) -> None:
        """A JSON file and, as asked, its `.zst` / `.bz2` (conda-index's `_write_repodata`)."""
        document = _json(data, self.options.compact)
        changed = self._put(name, document)
        for enabled, suffix in ((self.options.zst, ".zst"), (self.options.bz2, ".bz2")):
            target = self.folder / (name + suffix)
            if not enabled:
                self._remove(name + suffix)
            elif changed or not target.exists():
                self._put(name + suffix, self._compressed(document, suffix))
            else:
                self.paths.append(target)

    def _compressed(self, document: bytes, suffix: str) -> bytes:
        """`.zst` or `.bz2` bytes of `document`; repodata.json without patches is the same
        document as repodata_from_packages.json, compressed once."""
        last = self._last_compressed.get(suffix)
        if last is not None and last[0] == document:
            return last[1]
        if suffix == ".zst":
            compressed = compress_zst(document, self.options.zst_level)
        else:
            compressed = compress_bz2(document)
        self._last_compressed[suffix] = (document, compressed)
        return compressed

    def _instructions(self, generate: PatchGenerator, repodata: bytes) -> Mapping[str, Any]:
        instructions = generate(self.subdir.name, lambda: orjson.loads(repodata))
        local = self.subdir.path / "patch_instructions.json"
        if instructions:
            data = orjson.dumps(instructions, option=orjson.OPT_SORT_KEYS)
            self._put("patch_instructions.json", _json(data, self.options.compact, True))
            return instructions
        if local.is_file():  # conda-index applies a patch_instructions.json already there
            return load_patch_instructions(local.read_bytes(), str(local))
        return {}

    def write(self, generate: PatchGenerator) -> list[Path]:
        """Write the subdir's files; return every file that is now its output."""
        entries = self.subdir.entries
        valid = {fn: e for fn, e in entries.items() if not e.error}
        packages = {fn: e.record_json for fn, e in valid.items() if not fn.endswith(".conda")}
        conda = {fn: e.record_json for fn, e in valid.items() if fn.endswith(".conda")}
        name, base_url = self.subdir.name, self.options.base_url
        from_packages = assemble_repodata(name, packages, conda, base_url=base_url)
        instructions = self._instructions(generate, from_packages)
        removed: list[str] = []
        patched_bz2, patched_conda = packages, conda
        if instructions:
            patched = patch_records(packages, conda, instructions)
            patched_bz2, patched_conda = patched.packages, patched.packages_conda
            removed = patched.removed
        repodata = assemble_repodata(name, patched_bz2, patched_conda, removed, base_url=base_url)
        self.subdir.patched = {
            fn: data
            for fn, data in (*patched_bz2.items(), *patched_conda.items())
            if data is not valid[fn].record_json
        }
        self.subdir.patch_removed = removed
        if self.options.monolithic:
            self._put_json("repodata_from_packages.json", from_packages)
            self._put_json("repodata.json", repodata)
        if self.options.current_repodata:
            pins = self.options.current_index_versions
            self._put_json(
                "current_repodata.json", current_repodata(name, orjson.loads(repodata), pins)
            )
        else:
            for suffix in ("", ".zst", ".bz2"):
                self._remove("current_repodata.json" + suffix)
        exports = {
            fn: orjson.loads(e.extra_json).get("run_exports") or {} for fn, e in valid.items()
        }
        if self.options.run_exports:
            bz2_exports = {fn: exports[fn] for fn in packages}
            conda_exports = {fn: exports[fn] for fn in conda}
            self._put_json("run_exports.json", run_exports_json(name, bz2_exports, conda_exports))
        if self.options.shards:
            self._write_shards(packages, conda, patched_bz2, patched_conda, removed, exports)
        else:
            self._remove(SHARDS_INDEX_FILENAME)
            self._remove(SHARDS_FROM_PACKAGES_FILENAME)
        extra = [
            n
            for n in (
                "repodata.json",
                "repodata.json.bz2",
                "repodata_from_packages.json",
                "repodata_from_packages.json.bz2",
                "patch_instructions.json",
            )
            if (self.folder / n).exists()
        ]
        # row by row, each record parsed only for its row: the whole subdir's records as
        # objects at once were the largest part of a cold run's peak memory
        records = {**patched_bz2, **patched_conda}
        rows = (subdir_index_row(fn, orjson.loads(records[fn])) for fn in sorted(records))
        html = subdir_index_head(f"{self.channel_name}/{name}", extra) + "".join(rows) + TAIL
        self._put("index.html", html.encode())
        return self.paths

    def _write_shards(
        self,
        packages: dict[str, bytes],
        conda: dict[str, bytes],
        patched_bz2: dict[str, bytes],
        patched_conda: dict[str, bytes],
        removed: list[str],
        exports: Mapping[str, Mapping[str, Any]],
    ) -> None:
        entries = self.subdir.entries
        names = sorted({entries[fn].name for fn in (*packages, *conda)})
        by_name: dict[str, tuple[dict[str, bytes], ...]] = {n: ({}, {}, {}, {}) for n in names}
        for slot, section in enumerate((packages, conda, patched_bz2, patched_conda)):
            for fn, data in section.items():
                by_name[entries[fn].name][slot][fn] = data
        gone: dict[str, list[str]] = {}
        for fn in removed:
            gone.setdefault(entries[fn].name, []).append(fn)
        cached = self.subdir.shard_inputs
        inputs: dict[str, list[bytes]] = {}
        unpatched: dict[str, bytes] = {}
        patched: dict[str, bytes] = {}
        unsynced: list[Path] = []
        for name in names:
            raw_bz2, raw_conda, new_bz2, new_conda = by_name[name]
            for key, bz2, cnd, rm, target in (
                (name, new_bz2, new_conda, gone.get(name, []), patched),
                ("\0" + name, raw_bz2, raw_conda, [], unpatched),
            ):
                digest = hashlib.sha256(
                    orjson.dumps(
                        [
                            sorted(bz2.items()),
                            sorted(cnd.items()),
                            rm,
                            [exports.get(fn) for fn in sorted([*bz2, *cnd])],
                        ],
                        default=bytes.hex,
                    )
                ).digest()
                hit = cached.get(key)
                if (
                    hit
                    and hit[0] == digest
                    and (self.folder / f"{hit[1].hex()}.msgpack.zst").exists()
                ):
                    target[name] = hit[1]
                else:
                    shard = index_shard(name, bz2, cnd, exports, rm)
                    path = self.folder / shard.filename
                    if not path.exists():
                        self.write_file(path, shard.data, sync=False)
                        unsynced.append(path)
                    target[name] = shard.digest
                inputs[key] = [digest, target[name]]
        self.subdir.shard_inputs = inputs
        _sync(unsynced)  # every new shard on disk before an index names it
        for filename, shards in (
            (SHARDS_FROM_PACKAGES_FILENAME, unpatched),
            (SHARDS_INDEX_FILENAME, patched),
        ):
            self._put_shards_index(filename, shards)

    def _put_shards_index(self, filename: str, shards: dict[str, bytes]) -> None:
        """conda-index's shard index: `base_url` and `shards_base_url` "" (the index's own
        folder), or `<base_url>/<subdir>/`, and `created_at`, kept when nothing else changed."""
        base = self.options.base_url
        base_url = f"{base.rstrip('/')}/{self.subdir.name}/" if base else ""
        path = self.folder / filename
        try:
            old = msgpack.unpackb(zstandard.decompress(path.read_bytes()), raw=False)
            same = old["shards"] == shards and old["info"]["base_url"] == base_url
            created_at = old["info"]["created_at"] if same else _created_at(self.now)
        except (FileNotFoundError, ValueError, KeyError, TypeError, zstandard.ZstdError):
            created_at = _created_at(self.now)
        data = build_shards_index(
            self.subdir.name, shards, base_url=base_url, shards_base_url="", created_at=created_at
        )
        self._put(filename, data)


def _sync(paths: list[Path]) -> None:
    """Make these new files durable: each fsync'd when they are few (a re-index adds one or
    two shards; os.sync would wait for every dirty page of the machine), else one os.sync."""
    if len(paths) > _FSYNC_AT_MOST:
        os.sync()
        return
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_FSYNC_AT_MOST = 64


def channel_files(
    out: Path,
    subdirs: Mapping[str, SubdirCache],
    options: IndexOptions,
    channel_name: str,
    now: float,
    write: Written,
    state: ChannelState,
) -> None:
    """channeldata.json, rss.xml and the root index.html, from every subdir's patched
    records; a name whose records did not change reuses its entry from the last run."""
    cache = state.cache
    per_name: dict[str, list[tuple[str, str, bytes]]] = {}
    for subdir in subdirs.values():
        for fn, data in subdir.patched_records().items():
            per_name.setdefault(subdir.entries[fn].name, []).append((subdir.name, fn, data))
    cached: dict[str, list[bytes]] = cache.get("packages", {})
    fresh: dict[str, list[bytes]] = {}
    packages: dict[str, Any] = {}
    for name, items in per_name.items():
        items.sort()
        digest = hashlib.sha256()
        for subdir_name, fn, data in items:
            digest.update(f"{subdir_name}/{fn}\0".encode())
            digest.update(data)
            digest.update(subdirs[subdir_name].entries[fn].extra_json)
        key = digest.digest()
        hit = cached.get(name)
        if hit and hit[0] == key:
            packages[name] = orjson.loads(hit[1])
        else:
            packages[name] = channeldata_package(
                ChannelEntry(
                    s, fn, orjson.loads(d), orjson.loads(subdirs[s].entries[fn].extra_json)
                )
                for s, fn, d in items
            )
        fresh[name] = [key, orjson.dumps(packages[name])]
    channeldata = assemble_channeldata(packages, subdirs)
    paths = [write(out / "channeldata.json", _json(channeldata, options.compact, True))]
    document = orjson.loads(channeldata)
    if options.rss:
        paths.append(write(out / "rss.xml", channeldata_rss(channel_name, document, now).encode()))
    paths.append(write(out / "index.html", channel_index_html(channel_name, document).encode()))
    payload = {
        "version": 2,
        "fingerprint": state.fingerprint,
        "outputs": {str(p): s for p in paths if (s := stat_of(p)) is not None},
        "packages": fresh,
    }
    write_if_changed(state.path, msgpack.packb(payload, use_bin_type=True))
