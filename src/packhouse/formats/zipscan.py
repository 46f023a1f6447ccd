"""Walk a zip archive's raw records and refuse one that two readers could read differently.

Installers and scanners read zips two ways: pip (Python's `zipfile`) trusts the central
directory at the end; streaming readers (uv, antivirus and audit tools) walk the local headers
from the start. An archive is accepted only when both ways give the same members:

- the file is exactly one zip: no bytes before the first local header (tar+zip and gzip+zip
  polyglots, self-extracting stubs) and none after the end record and its comment;
- members are contiguous and in order, each local header agreeing with its central directory
  entry (name bytes, flags, method, CRC and sizes), with nothing between or overlapping;
- a data descriptor (flag bit 3) only after deflated data, and equal to the directory entry;
- names in UTF-8 when flagged (bit 11) and ASCII when not (unflagged bytes are CP 437 to
  `zipfile` and UTF-8 to most other readers), an Info-ZIP Unicode Path equal to the name;
- no encryption (bits 0 and 6), patched data (bit 5), masked headers (bit 13) or reserved
  flags, no "version needed" above 6.3 (what `zipfile` reads), only the methods the caller
  allows, a single disk, no duplicated ZIP64 or Unicode Path extra fields.

This is the rule set of Warehouse's `validate_zipfile` and uv's streaming checks, except that
a consistent data descriptor is accepted (as uv does). Pure: bytes in, entries or
`UnsafeArchive` out.
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from dataclasses import dataclass
from typing import BinaryIO

from packhouse.errors import UnsafeArchive

__all__ = ["ZipEntry", "scan_zip"]

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_LOCATOR = b"PK\x06\x07"
_DESCRIPTOR = b"PK\x07\x08"
_EOCD_SIZE = 22
_EOCD64_SIZE = 56
_LOCATOR_SIZE = 20
_CENTRAL_SIZE = 46
_LOCAL_SIZE = 30
_MAX_COMMENT = 0xFFFF
_U32 = 0xFFFFFFFF
_U16 = 0xFFFF
_ZIP64_EXTRA = 0x0001
_UNICODE_PATH_EXTRA = 0x7075
_MAX_EXTRACT_VERSION = 63  # what Python's zipfile reads; 9.9 and the like are refused
_DEFLATED = 8
# Bits 1-2 (deflate options), 3 (data descriptor), 11 (UTF-8 names).
_ALLOWED_FLAGS = 0x0002 | 0x0004 | 0x0008 | 0x0800
_FLAG_NAMES = {
    0: "is encrypted (flag bit 0)",
    5: "is flagged as compressed patched data (flag bit 5)",
    6: "is flagged as strongly encrypted (flag bit 6)",
    13: "has masked local headers (flag bit 13)",
}
_METHOD_NAMES = {0: "stored (0)", 8: "deflated (8)"}


@dataclass(frozen=True, slots=True)
class ZipEntry:
    """One member as its central directory entry and local header (which agree) describe it."""

    name: str
    flag_bits: int
    method: int
    crc: int
    compressed_size: int
    file_size: int
    header_offset: int
    create_system: int
    external_attr: int


def _read_at(fh: BinaryIO, offset: int, size: int, kind: str, what: str) -> bytes:
    fh.seek(offset)
    data = fh.read(size)
    if len(data) != size:
        raise UnsafeArchive(
            f"{kind} is not a valid zip file: it is truncated ({what} at byte {offset} is cut"
            " short)"
        )
    return data


def _extras(extra: bytes, kind: str, name: str) -> dict[int, bytes]:
    """The extra fields by id; a field that overruns, or a repeated ZIP64 / Unicode Path field,
    is refused (readers disagree on which copy counts)."""
    fields: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(extra):
        field_id, length = struct.unpack_from("<HH", extra, pos)
        if pos + 4 + length > len(extra):
            raise UnsafeArchive(f"{kind} member {name!r} has a corrupt extra field {field_id:#06x}")
        if field_id in fields and field_id in (_ZIP64_EXTRA, _UNICODE_PATH_EXTRA):
            raise UnsafeArchive(f"{kind} member {name!r} repeats extra field {field_id:#06x}")
        fields.setdefault(field_id, extra[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return fields


def _decode_name(raw: bytes, flags: int, kind: str) -> str:
    if flags & 0x0800:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeArchive(
                f"{kind} member {raw!r} is flagged as a UTF-8 name (bit 11) but is not UTF-8"
            ) from None
    if not raw.isascii():
        raise UnsafeArchive(
            f"{kind} member {raw.decode('cp437')!r} has a non-ASCII name without the UTF-8 flag"
            " (bit 11): zipfile reads it as CP 437, other tools as UTF-8; rebuild the archive"
            " with a current tool"
        )
    return raw.decode("ascii")


def _check_unicode_path(fields: dict[int, bytes], name: str, kind: str) -> None:
    data = fields.get(_UNICODE_PATH_EXTRA)
    if data is None:
        return
    try:
        alias = data[5:].decode("utf-8")
    except UnicodeDecodeError:
        alias = None
    if alias != name:
        raise UnsafeArchive(
            f"{kind} member {name!r} carries an Info-ZIP Unicode Path ({data[5:]!r}) that differs"
            " from its name: readers would disagree on what it is called"
        )


def _check_version(version: int, kind: str, name: str) -> None:
    if version > _MAX_EXTRACT_VERSION:
        raise UnsafeArchive(
            f"{kind} member {name!r} needs zip version {version // 10}.{version % 10} to extract;"
            " at most 6.3 is supported"
        )


def _check_flags(
    flags: int, version: int, method: int, methods: Collection[int], kind: str, name: str
) -> None:
    for bit in range(16):
        if flags & (1 << bit) and not _ALLOWED_FLAGS & (1 << bit):
            problem = _FLAG_NAMES.get(bit, f"sets the reserved flag bit {bit}")
            raise UnsafeArchive(f"{kind} member {name!r} {problem}")
    _check_version(version, kind, name)
    if method not in methods:
        allowed = " and ".join(_METHOD_NAMES.get(m, str(m)) for m in sorted(methods))
        raise UnsafeArchive(
            f"{kind} member {name!r} uses compression method {method}; only {allowed}"
            f" {'is' if len(methods) == 1 else 'are'} accepted"
        )
    if flags & 0x0008 and method != _DEFLATED:
        raise UnsafeArchive(
            f"{kind} member {name!r} has a data descriptor (flag bit 3) after data that is not"
            " deflated, so a streaming reader cannot find where the data ends"
        )


def _zip64_values(
    fields: dict[int, bytes], wanted: list[bool], kind: str, name: str
) -> list[int | None]:
    """The ZIP64 extra's values for the fields that are 0xFFFFFFFF, in the order of the spec."""
    data = fields.get(_ZIP64_EXTRA, b"")
    values: list[int | None] = []
    pos = 0
    for want in wanted:
        if not want:
            values.append(None)
            continue
        if pos + 8 > len(data):
            raise UnsafeArchive(f"{kind} member {name!r} lacks the ZIP64 sizes it announces")
        values.append(struct.unpack_from("<Q", data, pos)[0])
        pos += 8
    return values


def _end_records(fh: BinaryIO, size: int, kind: str) -> tuple[int, int, int, int]:
    """(entries, central directory offset, its size, where it must end) from the end records."""
    tail_size = min(size, _EOCD_SIZE + _MAX_COMMENT)
    tail = _read_at(fh, size - tail_size, tail_size, kind, "the end")
    pos = tail.rfind(_EOCD)
    if pos < 0 or pos + _EOCD_SIZE > len(tail):
        raise UnsafeArchive(
            f"{kind} is not a valid zip file (no end of central directory record); rebuild it"
            " and upload it again"
        )
    disk, cd_disk, on_disk, entries, cd_size, cd_offset, comment = struct.unpack_from(
        "<4x4H2LH", tail, pos
    )
    end = pos + _EOCD_SIZE + comment
    if end != len(tail):
        raise UnsafeArchive(
            f"{kind} has {len(tail) - end} bytes after the end of the zip archive"
            if end < len(tail)
            else f"{kind} is not a valid zip file: its comment is cut short"
        )
    eocd_at = size - tail_size + pos
    cd_end = eocd_at
    locator_at = eocd_at - _LOCATOR_SIZE
    if locator_at >= 0 and _read_at(fh, locator_at, 4, kind, "the ZIP64 locator") == _LOCATOR:
        _, disk64, eocd64_at, disks = struct.unpack(
            "<4sLQL", _read_at(fh, locator_at, _LOCATOR_SIZE, kind, "the ZIP64 locator")
        )
        cd_end = locator_at - _EOCD64_SIZE
        if disk64 != 0 or disks > 1 or eocd64_at != cd_end or cd_end < 0:
            raise UnsafeArchive(f"{kind} has a ZIP64 locator that points to the wrong place")
        record = _read_at(fh, cd_end, _EOCD64_SIZE, kind, "the ZIP64 end record")
        sig, record_size, _, _, disk, cd_disk, on_disk, entries, cd_size, cd_offset = struct.unpack(
            "<4sQ2H2L4Q", record
        )
        if sig != _EOCD64 or record_size != _EOCD64_SIZE - 12:
            raise UnsafeArchive(f"{kind} has a damaged or extended ZIP64 end record")
    elif _U32 in (cd_size, cd_offset) or _U16 in (entries, on_disk):
        raise UnsafeArchive(f"{kind} announces ZIP64 sizes but has no ZIP64 end record")
    if disk != 0 or cd_disk != 0 or on_disk != entries:
        raise UnsafeArchive(f"{kind} spans several disks; only single-file zips are accepted")
    if cd_offset + cd_size != cd_end:
        gap = cd_end - cd_offset - cd_size
        raise UnsafeArchive(
            f"{kind} has {gap} bytes before the zip archive (another file joined in front of it)"
            if gap > 0
            else f"{kind} has a central directory that does not fit where its end record says"
        )
    return entries, cd_offset, cd_size, cd_end


def _central_entries(
    cd: bytes, entries: int, methods: Collection[int], kind: str
) -> list[tuple[ZipEntry, bytes]]:
    found: list[tuple[ZipEntry, bytes]] = []
    pos = 0
    while pos < len(cd):
        if cd[pos : pos + 4] != _CENTRAL or pos + _CENTRAL_SIZE > len(cd):
            raise UnsafeArchive(f"{kind} has a damaged central directory at entry {len(found)}")
        (
            _, _, create_system, version, _, flags, method, _, _, crc, csize, usize,
            name_len, extra_len, comment_len, disk, _, external, offset,
        ) = struct.unpack_from("<4s4B4HL2L5H2L", cd, pos)  # fmt: skip
        start = pos + _CENTRAL_SIZE
        pos = start + name_len + extra_len + comment_len
        if pos > len(cd):
            raise UnsafeArchive(f"{kind} has a damaged central directory at entry {len(found)}")
        raw = cd[start : start + name_len]
        name = _decode_name(raw, flags, kind)
        fields = _extras(cd[start + name_len : start + name_len + extra_len], kind, name)
        _check_unicode_path(fields, name, kind)
        _check_flags(flags, version, method, methods, kind, name)
        wide = _zip64_values(fields, [usize == _U32, csize == _U32, offset == _U32], kind, name)
        usize = usize if wide[0] is None else wide[0]
        csize = csize if wide[1] is None else wide[1]
        offset = offset if wide[2] is None else wide[2]
        if disk not in (0, _U16):
            raise UnsafeArchive(f"{kind} member {name!r} is on another disk")
        entry = ZipEntry(name, flags, method, crc, csize, usize, offset, create_system, external)
        found.append((entry, raw))
    if len(found) != entries:
        raise UnsafeArchive(
            f"{kind}'s central directory holds {len(found)} entries but its end record says"
            f" {entries}"
        )
    return found


def _check_local(fh: BinaryIO, entry: ZipEntry, raw: bytes, kind: str) -> int:
    """Check the member's local header (and data descriptor); return where the member ends."""
    name = entry.name
    header = _read_at(fh, entry.header_offset, _LOCAL_SIZE, kind, f"member {name!r}")
    sig, version, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = struct.unpack(
        "<4s2B4HL2L2H", header
    )
    if sig != _LOCAL:
        raise UnsafeArchive(f"{kind} member {name!r} has no local header where the directory says")
    rest = _read_at(fh, entry.header_offset + _LOCAL_SIZE, name_len + extra_len, kind, name)
    if rest[:name_len] != raw:
        raise UnsafeArchive(
            f"{kind} member {name!r} is named {rest[:name_len]!r} in its local header:"
            " installers and scanners would see different files"
        )
    if flags != entry.flag_bits or method != entry.method:
        raise UnsafeArchive(
            f"{kind} member {name!r} has other flags or compression in its local header than in"
            " the central directory"
        )
    _check_version(version, kind, name)
    fields = _extras(rest[name_len:], kind, name)
    _check_unicode_path(fields, name, kind)
    wide = _zip64_values(fields, [usize == _U32, csize == _U32], kind, name)
    usize = usize if wide[0] is None else wide[0]
    csize = csize if wide[1] is None else wide[1]
    described = (crc, csize, usize)
    expected = (entry.crc, entry.compressed_size, entry.file_size)
    deferred = bool(flags & 0x0008)
    # With a data descriptor, a local field may be zero (macOS's ditto zeroes the CRC and the
    # compressed size but keeps the size): the descriptor must then give the real values.
    agree = all(a == b or (deferred and a == 0) for a, b in zip(described, expected, strict=True))
    if not agree:
        raise UnsafeArchive(
            f"{kind} member {name!r} has other sizes or CRC in its local header than in the"
            " central directory"
        )
    end: int = entry.header_offset + _LOCAL_SIZE + name_len + extra_len + entry.compressed_size
    if not deferred:
        return end
    wide_sizes = _ZIP64_EXTRA in fields
    size = 24 if wide_sizes else 16
    descriptor = _read_at(fh, end, size, kind, f"the data descriptor of {name!r}")
    if descriptor[:4] == _DESCRIPTOR:
        descriptor, length = descriptor[4:], size
    else:
        length = size - 4
    fmt = "<LQQ" if wide_sizes else "<LLL"
    if struct.unpack_from(fmt, descriptor) != expected:
        raise UnsafeArchive(
            f"{kind} member {name!r} has a data descriptor that disagrees with the central"
            " directory"
        )
    return end + length


def scan_zip(
    fh: BinaryIO, size: int, kind: str, *, methods: Collection[int], max_members: int
) -> list[ZipEntry]:
    """Check the zip in `fh` (`size` bytes) as described above; return its members in order."""
    entries, cd_offset, cd_size, _ = _end_records(fh, size, kind)
    if entries > max_members:
        raise UnsafeArchive(f"{kind} has {entries} members; at most {max_members} are allowed")
    cd = _read_at(fh, cd_offset, cd_size, kind, "the central directory")
    members = _central_entries(cd, entries, methods, kind)
    seen: set[bytes] = set()
    expected = 0
    for entry, raw in sorted(members, key=lambda item: item[0].header_offset):
        if raw in seen:
            raise UnsafeArchive(f"{kind} has more than one member named {entry.name!r}")
        seen.add(raw)
        if entry.header_offset != expected:
            raise UnsafeArchive(
                f"{kind} has {entry.header_offset} bytes before the zip archive (another file"
                " joined in front of it)"
                if expected == 0 and entry.header_offset > 0
                else f"{kind} member {entry.name!r} does not start where the previous member ends"
                " (hidden or overlapping data)"
            )
        expected = _check_local(fh, entry, raw, kind)
    if expected != cd_offset:
        raise UnsafeArchive(
            f"{kind} has {cd_offset - expected} bytes between its last member and its central"
            " directory"
            if expected < cd_offset
            else f"{kind}'s last member runs into its central directory"
        )
    return [entry for entry, _ in members]
