"""What `packhouse conda index` remembers between runs, and how it writes files.

`<channel>/.cache/packhouse/<subdir>.msgpack` holds, per package filename, the size and mtime
seen, the record's JSON bytes (with its CEP 47 `indexed_timestamp`), the extra JSON (about,
post-install flags, run_exports) and why a package was refused; per package name the input
and output digests of its shards; and a fingerprint of the inputs and options that made the
subdir's files, with the size and mtime of each file written, so a run that finds the same
inputs and untouched outputs writes nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import orjson

from packhouse.formats.conda.names import EXTENSIONS

__all__ = [
    "CACHE_VERSION",
    "ChannelState",
    "Entry",
    "SubdirCache",
    "channel_state",
    "stat_of",
    "write_if_changed",
]

CACHE_VERSION = 3


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


def write_if_changed(path: Path, data: bytes, *, sync: bool = True) -> bool:
    """Atomically replace `path` with `data` unless it already holds exactly those bytes.

    `sync=False` skips the fsync, for many small files made durable together by one
    `os.sync()` before anything that names them is written (the shards)."""
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
            if sync:
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


class SubdirCache:
    """One subdir's cache in `<cache_dir>/<name>.msgpack`: two msgpack documents, a small
    state (file stats, fingerprint, outputs, counts) read on every run, then the records,
    unpacked only when a run needs them (not when nothing changed)."""

    def __init__(self, name: str, path: Path, cache_path: Path) -> None:
        self.name = name
        self.path = path  # the subdir folder holding the packages
        self.cache_path = cache_path
        self.stat: dict[str, list[int]] = {}  # filename -> [size, mtime_ns] when last indexed
        self.fingerprint = b""
        self.outputs: dict[str, list[int]] = {}  # path -> [size, mtime_ns] as written
        self.failures: list[list[str]] = []  # [filename, why it was refused]
        self.packages = 0
        self.changed = False  # packages read, added or removed in this run
        # filename -> (sha256, indexed_timestamp) of a package re-read because its stat
        # changed: the same bytes keep their CEP 47 timestamp, other bytes are a new artifact.
        self.previous: dict[str, tuple[str, int]] = {}
        self._stat_digest = b""  # of `stat`, kept in the state so a quiet run needn't hash it
        self._rest: msgpack.Unpacker | None = None
        self._entries: dict[str, Entry] | None = None
        self._shard_inputs: dict[str, list[bytes]] = {}  # name -> [input, output digest]
        # what the subdir's patches made: the records they rewrote, the filenames they removed
        self._patched: dict[str, bytes] = {}
        self._patch_removed: list[str] = []

    @classmethod
    def load(cls, name: str, path: Path, cache_dir: Path) -> SubdirCache:
        cache = cls(name, path, cache_dir / f"{name}.msgpack")
        try:
            raw = cache.cache_path.read_bytes()
            unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(raw) + 1)
            unpacker.feed(raw)
            state = next(unpacker)
            if not isinstance(state, dict) or state.get("version") != CACHE_VERSION:
                return cache
            cache.stat = dict(state["stat"])
            cache.fingerprint = bytes(state["fingerprint"])
            cache.outputs = dict(state["outputs"])
            cache.failures = list(state["failures"])
            cache.packages = int(state["packages"])
            cache._stat_digest = bytes(state["stat_digest"])
            cache._rest = unpacker
        except (FileNotFoundError, ValueError, StopIteration, KeyError, TypeError):
            return cls(name, path, cache.cache_path)  # no cache, or a damaged one: a cold run
        except msgpack.UnpackException:
            return cls(name, path, cache.cache_path)
        return cache

    def _load_rest(self) -> None:
        if self._entries is not None:
            return
        self._entries = {}
        unpacker, self._rest = self._rest, None
        if unpacker is None:
            return
        try:
            rest = next(unpacker)
            entries = {fn: Entry(*values) for fn, values in rest["entries"].items()}
            self._shard_inputs = dict(rest["shards"])
            self._patched = dict(rest["patched"])
            self._patch_removed = list(rest["patch_removed"])
        except (ValueError, StopIteration, KeyError, TypeError, msgpack.UnpackException):
            self.stat, self.fingerprint, self._stat_digest = {}, b"", b""  # lost: read all again
            return
        self._entries = entries

    def stat_digest(self) -> bytes:
        if not self._stat_digest:
            items = sorted(self.stat.items())
            self._stat_digest = hashlib.sha256(orjson.dumps(items)).digest()
        return self._stat_digest

    @property
    def entries(self) -> dict[str, Entry]:
        self._load_rest()
        assert self._entries is not None
        return self._entries

    @property
    def shard_inputs(self) -> dict[str, list[bytes]]:
        self._load_rest()
        return self._shard_inputs

    @shard_inputs.setter
    def shard_inputs(self, value: dict[str, list[bytes]]) -> None:
        self._load_rest()
        self._shard_inputs = value

    @property
    def patched(self) -> dict[str, bytes]:
        self._load_rest()
        return self._patched

    @patched.setter
    def patched(self, value: dict[str, bytes]) -> None:
        self._load_rest()
        self._patched = value

    @property
    def patch_removed(self) -> list[str]:
        self._load_rest()
        return self._patch_removed

    @patch_removed.setter
    def patch_removed(self, value: list[str]) -> None:
        self._load_rest()
        self._patch_removed = value

    def save(self) -> None:
        entries = self.entries
        stat = {fn: [e.size, e.mtime_ns] for fn, e in sorted(entries.items())}
        if stat != self.stat:
            self.stat, self._stat_digest = stat, b""
        self.failures = [[fn, e.error] for fn, e in sorted(entries.items()) if e.error]
        self.packages = len(entries) - len(self.failures)
        state = {
            "version": CACHE_VERSION,
            "stat": self.stat,
            "fingerprint": self.fingerprint,
            "outputs": self.outputs,
            "failures": self.failures,
            "packages": self.packages,
            "stat_digest": self.stat_digest(),
        }
        rest = {
            "entries": {fn: entry.pack() for fn, entry in sorted(entries.items())},
            "shards": self._shard_inputs,
            "patched": self._patched,
            "patch_removed": self._patch_removed,
        }
        data = msgpack.packb(state, use_bin_type=True) + msgpack.packb(rest, use_bin_type=True)
        write_if_changed(self.cache_path, data)

    def scan(self, *, keep_missing: bool) -> tuple[list[str], int]:
        """Refresh stat data; return (filenames to read, number of removed files).

        `keep_missing` (conda-index's `--update-only`) keeps packages no longer on disk."""
        self.path.mkdir(parents=True, exist_ok=True)
        seen: dict[str, list[int]] = {}
        with os.scandir(self.path) as it:
            for item in it:
                if item.name.endswith(EXTENSIONS) and item.is_file():
                    st = item.stat()
                    seen[item.name] = [st.st_size, st.st_mtime_ns]
        if seen == self.stat and self.fingerprint:
            return [], 0  # the records need not even be unpacked
        entries = self.entries
        removed = [] if keep_missing else [fn for fn in entries if fn not in seen]
        for fn in removed:
            del entries[fn]
        changed = []
        for fn, (size, mtime_ns) in seen.items():
            entry = entries.get(fn)
            if entry is None or entry.size != size or entry.mtime_ns != mtime_ns:
                if entry is not None and entry.record_json and entry.indexed_timestamp:
                    sha256 = orjson.loads(entry.record_json).get("sha256", "")
                    self.previous[fn] = (str(sha256), entry.indexed_timestamp)
                entries[fn] = Entry(size, mtime_ns)
                changed.append(fn)
        self.changed = bool(changed or removed)
        self.stat = {fn: [e.size, e.mtime_ns] for fn, e in entries.items()}
        self._stat_digest = b""
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


@dataclass
class ChannelState:
    """What the last run wrote at the channel root (channeldata.json, rss.xml, index.html):
    its cache, the fingerprint of this run's inputs, and whether those files are current."""

    path: Path
    cache: dict[str, Any]
    fingerprint: bytes
    current: bool


def channel_state(
    root: Path,
    out: Path,
    subdirs: Mapping[str, SubdirCache],
    *,
    rss: bool,
    compact: bool,
    channel_name: str,
) -> ChannelState:
    """Told from `<channel>/.cache/packhouse/channeldata.msgpack` and the subdirs'
    fingerprints, without the writer (a run that finds nothing changed imports none of it)."""
    path = root / ".cache" / "packhouse" / "channeldata.msgpack"
    try:
        cache = msgpack.unpackb(path.read_bytes(), raw=False)
    except (FileNotFoundError, ValueError, msgpack.UnpackException):
        cache = {}
    if not isinstance(cache, dict) or cache.get("version") != 2:
        cache = {}
    fingerprint = hashlib.sha256(
        orjson.dumps(
            [rss, channel_name, compact, str(out.resolve())]
            + [[n, s.fingerprint] for n, s in sorted(subdirs.items())],
            default=bytes.hex,
        )
    ).digest()
    outputs: dict[str, list[int]] = cache.get("outputs", {})
    current = cache.get("fingerprint") == fingerprint and all(
        stat_of(Path(p)) == list(v) for p, v in outputs.items()
    )
    return ChannelState(path, cache, fingerprint, current)
