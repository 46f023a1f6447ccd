"""Reading an upstream conda channel: repodata.json as it arrives, CEP 16 shard indexes and
shards, and the record checks and times a proxy needs.

Everything an upstream sends is untrusted. `iter_repodata` reads a repodata.json of any size
from a stream of chunks, one record at a time (a conda-forge subdir is hundreds of MB; it is
never held whole), and `check_record` checks each before use: a filename of the section it
is in (`<name>-<version>-<build>.conda` in `packages.conda`, `.tar.bz2` in `packages`), a
record naming the same package, version and build, a CEP 26 package name, a sha256 (a file
that cannot be checked is never served), a size. Records that fail are skipped and counted
with their reasons. A document that cannot be read at all raises RemoteError.

The record times a cooldown goes by (`record_time`): CEP 47 `indexed_timestamp` where the
record has it, else the build's `timestamp`; conda has written both in seconds and in
milliseconds.

Pure: no network, no clock.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgpack
import orjson
import zstandard

from packhouse.formats.conda.names import name_problems, parse_filename
from packhouse.formats.conda.records import dumps

__all__ = [
    "SECTIONS",
    "RemoteError",
    "RemoteRecord",
    "RemoteShardsIndex",
    "Skipped",
    "check_record",
    "iter_repodata",
    "parse_shard",
    "parse_shards_index",
    "record_time",
    "unpack_record",
]

SECTIONS = ("packages", "packages.conda")
_EXTENSION = {"packages": ".tar.bz2", "packages.conda": ".conda"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_MAX_PROBLEMS = 20  # reasons kept for the log; the count covers all
_MS_THRESHOLD = 253_402_300_799  # 9999-12-31 in seconds: anything larger is milliseconds
_WS = re.compile(r"[ \t\n\r]*")


class RemoteError(ValueError):
    """An upstream document that cannot be read at all."""


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """One record of an upstream subdir, checked."""

    filename: str
    name: str
    sha256: str
    record: bytes  # the record's JSON, keys sorted (records.dumps)
    time_ms: int  # `record_time` in milliseconds since the epoch; -1 when unknown


@dataclass
class Skipped:
    """Records left out, counted, with the first reasons."""

    count: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        self.count += 1
        if len(self.reasons) < _MAX_PROBLEMS:
            self.reasons.append(reason)


def record_time(record: Mapping[str, Any]) -> datetime | None:
    """When a cooldown counts the record as published: CEP 47 `indexed_timestamp`, else
    `timestamp` (seconds or milliseconds), or None when it has neither."""
    ms = _time_ms(record)
    return None if ms < 0 else datetime.fromtimestamp(ms / 1000, UTC)


def _time_ms(record: Mapping[str, Any]) -> int:
    for key in ("indexed_timestamp", "timestamp"):
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            continue
        ms = int(value) if value > _MS_THRESHOLD else int(value * 1000)
        if ms <= _MS_THRESHOLD * 1000:
            return ms
    return -1


def check_record(
    section: str, filename: object, record: object
) -> tuple[RemoteRecord | None, str | None]:
    """(the checked record, None), or (None, why it is left out)."""
    if not isinstance(filename, str) or not isinstance(record, dict):
        return None, f"{str(filename)[:80]!r}: not a record"
    parsed = parse_filename(filename)
    if parsed is None or parsed.extension != _EXTENSION[section]:
        return None, f"{filename[:80]!r}: not a {_EXTENSION[section]} package filename"
    name = record.get("name")
    if name != parsed.name or name_problems(parsed.name):
        return None, f"{filename!r}: the record names {str(name)[:80]!r}"
    if str(record.get("version")) != parsed.version or record.get("build") != parsed.build:
        return None, f"{filename!r}: the record's version or build differs from the filename"
    sha256 = record.get("sha256")
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        return None, f"{filename!r}: no sha256 to check the file against"
    md5 = record.get("md5")
    if md5 is not None and not (isinstance(md5, str) and _MD5.match(md5)):
        return None, f"{filename!r}: the md5 is not 32 hex digits"
    size = record.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return None, f"{filename!r}: no size"
    try:
        data = dumps(record)
    except TypeError as exc:  # an integer beyond 64 bits, say
        return None, f"{filename!r}: cannot be stored: {exc}"
    return RemoteRecord(filename, parsed.name, sha256, data, _time_ms(record)), None


# -- repodata.json, streamed --------------------------------------------------------------


@dataclass
class RepodataHead:
    """What a repodata.json says besides its records (filled while it is read)."""

    info: dict[str, Any] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    repodata_version: int = 1


class _Reader:
    """A str buffer over decoded chunks: JSON values are read with the C scanner of the
    json module (`raw_decode`), one at a time, reading more when a value runs past the end
    of what has arrived."""

    def __init__(self, chunks: Iterable[bytes], max_value: int) -> None:
        self._chunks = iter(chunks)
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._json = json.JSONDecoder()
        self._max = max_value
        self.buf = ""
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        if self.eof:
            return False
        if self.pos > 1 << 20:
            self.buf, self.pos = self.buf[self.pos :], 0
        try:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.eof = True
                self.buf += self._decoder.decode(b"", final=True)
                return False
            self.buf += self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise RemoteError(f"the document is not UTF-8: {exc}") from None
        return True

    def peek(self) -> str:
        """The next character after white space ('' at the end)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise RemoteError(f"expected {char!r} but found {found[:1]!r} at {self.pos}")
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self._json.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if not self._grow():
                    raise RemoteError(f"not valid JSON: {exc.msg} at {exc.pos}") from None
                continue
            # a number (or a literal) at the very end may go on in the next chunk
            if end >= len(self.buf) and self._grow():
                continue
            self.pos = end
            return value

    def _grow(self) -> bool:
        """Read until what is left of the buffer has doubled (so a value across many chunks
        is decoded a few times, not once per chunk); False at the end of the document."""
        left = len(self.buf) - self.pos
        if left > self._max:
            raise RemoteError(f"a value larger than {self._max} characters")
        grew = False
        while len(self.buf) - self.pos < 2 * left + 1 and self.more():
            grew = True
        return grew

    def separator(self, close: str) -> bool:
        """After a member: True for ',', False for the closing character."""
        found = self.peek()
        if found == ",":
            self.pos += 1
            return True
        if found == close:
            self.pos += 1
            return False
        raise RemoteError(f"expected ',' or {close!r} but found {found[:1]!r}")


def iter_repodata(
    chunks: Iterable[bytes], head: RepodataHead, *, max_value: int = 16 << 20
) -> Iterator[tuple[str, str, Any]]:
    """(section, filename, record) for every record of a repodata.json arriving in
    `chunks`, in document order, unchecked; `head` gets `info`, `removed` and
    `repodata_version` as they are read. Members other than records are read whole (at
    most `max_value` characters each)."""
    reader = _Reader(chunks, max_value)
    reader.expect("{")
    if reader.peek() == "}":
        return
    while True:
        key = reader.value()
        if not isinstance(key, str):
            raise RemoteError("a key of the document is not a string")
        reader.expect(":")
        if key in SECTIONS:
            reader.expect("{")
            if reader.peek() != "}":
                while True:
                    filename = reader.value()
                    reader.expect(":")
                    yield key, filename, reader.value()
                    if not reader.separator("}"):
                        break
            else:
                reader.pos += 1
        else:
            value = reader.value()
            if key == "info" and isinstance(value, dict):
                head.info = value
            elif key == "removed" and isinstance(value, list):
                head.removed = [f for f in value if isinstance(f, str)]
            elif key == "repodata_version" and isinstance(value, int):
                head.repodata_version = value
        if not reader.separator("}"):
            break
    if reader.peek():
        raise RemoteError("the document goes on after its end")


# -- CEP 16 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteShardsIndex:
    """An upstream's `repodata_shards.msgpack.zst`."""

    base_url: str  # where packages are, relative to the index (CEP 16 `info.base_url`)
    shards_base_url: str  # where shards are, likewise
    shards: dict[str, bytes]  # package name -> sha256 of its shard (32 bytes)
    skipped: int = 0


def _unzstd(data: bytes, max_bytes: int, what: str) -> bytes:
    try:
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            raw = reader.read(max_bytes + 1)
    except zstandard.ZstdError as exc:
        raise RemoteError(f"{what} is not zstd: {exc}") from None
    if len(raw) > max_bytes:
        raise RemoteError(f"{what} is larger than {max_bytes} bytes once decompressed")
    return raw


def _unpack(raw: bytes, what: str) -> Any:
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise RemoteError(f"{what} is not msgpack: {exc}") from None


def parse_shards_index(data: bytes, max_bytes: int) -> RemoteShardsIndex:
    doc = _unpack(_unzstd(data, max_bytes, "the shard index"), "the shard index")
    if not isinstance(doc, dict) or not isinstance(doc.get("shards"), dict):
        raise RemoteError("the shard index has no 'shards' map")
    info = doc["info"] if isinstance(doc.get("info"), dict) else {}
    shards: dict[str, bytes] = {}
    skipped = 0
    for name, digest in doc["shards"].items():
        valid = isinstance(name, str) and isinstance(digest, bytes) and len(digest) == 32
        if valid and not name_problems(name):
            shards[name] = digest
        else:
            skipped += 1
    base_url = info.get("base_url")
    shards_base_url = info.get("shards_base_url")
    return RemoteShardsIndex(
        base_url if isinstance(base_url, str) else "./",
        shards_base_url if isinstance(shards_base_url, str) else "./",
        shards,
        skipped,
    )


def unpack_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A CEP 16 record (md5 and sha256 as raw bytes) as repodata.json has it (hex)."""
    unpacked = dict(record)
    for key in ("md5", "sha256"):
        value = unpacked.get(key)
        if isinstance(value, bytes):
            unpacked[key] = value.hex()
    return unpacked


def parse_shard(
    data: bytes, name: str, max_bytes: int, skipped: Skipped
) -> tuple[list[RemoteRecord], list[str]]:
    """The checked records of one package's shard, and its removed filenames. Records of
    another name are left out too (a shard holds one name)."""
    doc = _unpack(_unzstd(data, max_bytes, f"the shard of {name!r}"), f"the shard of {name!r}")
    if not isinstance(doc, dict):
        raise RemoteError(f"the shard of {name!r} is not a map")
    found: list[RemoteRecord] = []
    for section in SECTIONS:
        records = doc.get(section) or {}
        if not isinstance(records, dict):
            raise RemoteError(f"the shard of {name!r} has a {section!r} that is not a map")
        for filename, record in records.items():
            checked, why = check_record(
                section, filename, unpack_record(record) if isinstance(record, dict) else record
            )
            if checked is None or checked.name != name:
                skipped.add(why or f"{filename!r} is not a package of {name!r}")
                continue
            found.append(checked)
    removed = doc.get("removed") or []
    return found, [f for f in removed if isinstance(f, str)] if isinstance(removed, list) else []


def record_json(record: RemoteRecord) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(record.record)
    return value
