"""What `packhouse conda index` remembers between runs, and how it writes files.

`<channel>/.cache/packhouse/<subdir>.msgpack` holds, per package filename, the size and mtime
seen, the record's JSON bytes (with its CEP 47 `indexed_timestamp`), the extra JSON (about,
post-install flags, run_exports) and why a package was refused; per package name the input
and output digests of its shards; and a fingerprint of the inputs and options that made the
subdir's files, with the size and mtime of each file written, so a run that finds the same
inputs and untouched outputs writes nothing.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import orjson

from packhouse.formats.conda.names import EXTENSIONS

__all__ = ["CACHE_VERSION", "Entry", "SubdirCache", "stat_of", "write_if_changed"]

CACHE_VERSION = 2


@dataclass
class Entry:
    size: int
    mtime_ns: int
    name: str = ""
    record_json: bytes = b""
    extra_json: bytes = b""
    error: str = ""
    indexed_timestamp: int = 0  # CEP 47, milliseconds; 0 until the package is read

    def pack(self) -> list[Any]:
        return [
            self.size,
            self.mtime_ns,
            self.name,
            self.record_json,
            self.extra_json,
            self.error,
            self.indexed_timestamp,
        ]


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace `path` with `data` unless it already holds exactly those bytes."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def stat_of(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


@dataclass
class SubdirCache:
    """One subdir's cache, loaded from and saved to `<cache_dir>/<name>.msgpack`."""

    name: str
    path: Path  # the subdir folder holding the packages
    cache_path: Path
    entries: dict[str, Entry] = field(default_factory=dict)
    shard_inputs: dict[str, list[bytes]] = field(default_factory=dict)  # name -> [in, out]
    fingerprint: bytes = b""
    outputs: dict[str, list[int]] = field(default_factory=dict)  # path -> [size, mtime_ns]
    # what the subdir's patches made: the records they rewrote, and the filenames they removed
    patched: dict[str, bytes] = field(default_factory=dict)
    patch_removed: list[str] = field(default_factory=list)
    changed: bool = False  # packages read, added or removed in this run
    # filename -> (sha256, indexed_timestamp) of a package re-read because its stat changed:
    # the same bytes keep their CEP 47 timestamp, other bytes are a new artifact.
    previous: dict[str, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def load(cls, name: str, path: Path, cache_dir: Path) -> SubdirCache:
        cache = cls(name, path, cache_dir / f"{name}.msgpack")
        try:
            data = msgpack.unpackb(cache.cache_path.read_bytes(), raw=False)
        except (FileNotFoundError, ValueError, msgpack.UnpackException):
            return cache
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return cache
        try:
            cache.entries = {fn: Entry(*values) for fn, values in data["entries"].items()}
            cache.shard_inputs = dict(data.get("shards", {}))
            cache.fingerprint = bytes(data.get("fingerprint", b""))
            cache.outputs = dict(data.get("outputs", {}))
            cache.patched = dict(data.get("patched", {}))
            cache.patch_removed = list(data.get("patch_removed", []))
        except (TypeError, KeyError, AttributeError):
            return cls(name, path, cache.cache_path)  # a damaged cache is a cold run
        return cache

    def save(self) -> None:
        payload = {
            "version": CACHE_VERSION,
            "entries": {fn: entry.pack() for fn, entry in sorted(self.entries.items())},
            "shards": self.shard_inputs,
            "fingerprint": self.fingerprint,
            "outputs": self.outputs,
            "patched": self.patched,
            "patch_removed": self.patch_removed,
        }
        write_if_changed(self.cache_path, msgpack.packb(payload, use_bin_type=True))

    def scan(self, *, keep_missing: bool) -> tuple[list[str], int]:
        """Refresh stat data; return (filenames to read, number of removed files).

        `keep_missing` (conda-index's `--update-only`) keeps packages no longer on disk."""
        self.path.mkdir(parents=True, exist_ok=True)
        seen: dict[str, tuple[int, int]] = {}
        with os.scandir(self.path) as it:
            for item in it:
                if item.name.endswith(EXTENSIONS) and item.is_file():
                    st = item.stat()
                    seen[item.name] = (st.st_size, st.st_mtime_ns)
        removed = [] if keep_missing else [fn for fn in self.entries if fn not in seen]
        for fn in removed:
            del self.entries[fn]
        changed = []
        for fn, (size, mtime_ns) in seen.items():
            entry = self.entries.get(fn)
            if entry is None or entry.size != size or entry.mtime_ns != mtime_ns:
                if entry is not None and entry.record_json and entry.indexed_timestamp:
                    sha256 = orjson.loads(entry.record_json).get("sha256", "")
                    self.previous[fn] = (str(sha256), entry.indexed_timestamp)
                self.entries[fn] = Entry(size, mtime_ns)
                changed.append(fn)
        self.changed = bool(changed or removed)
        return sorted(changed), len(removed)

    def patched_records(self) -> dict[str, bytes]:
        """The subdir's records as repodata.json has them (after its patches)."""
        gone = set(self.patch_removed)
        return {
            fn: self.patched.get(fn, e.record_json)
            for fn, e in self.entries.items()
            if not e.error and fn not in gone
        }

    def outputs_intact(self, fingerprint: bytes) -> bool:
        """True when the inputs and options are those of the last run and every file that run
        wrote is still there, unmodified."""
        if self.changed or not self.fingerprint or fingerprint != self.fingerprint:
            return False
        return all(stat_of(Path(p)) == list(v) for p, v in self.outputs.items())

    def remember_outputs(self, fingerprint: bytes, paths: list[Path]) -> None:
        self.fingerprint = fingerprint
        self.outputs = {str(p): s for p in paths if (s := stat_of(p)) is not None}
