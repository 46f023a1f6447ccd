"""Write zip archives record by record, so a test can make the local headers and the central
directory disagree, or add bytes where no zip tool would put them."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

STORED = 0
DEFLATED = 8


@dataclass
class RawMember:
    name: bytes
    data: bytes
    method: int = DEFLATED
    flags: int = 0
    version: int = 20
    external_attr: int = 0o100644 << 16
    extra: bytes = b""
    # Overrides for the local header only (None: the same as the central directory's).
    local_name: bytes | None = None
    local_flags: int | None = None
    local_version: int | None = None
    local_crc: int | None = None
    local_sizes: tuple[int, int] | None = None  # (compressed, uncompressed)
    local_extra: bytes | None = None
    # With flag bit 3: the descriptor written after the data (None: a correct one).
    descriptor: bytes | None = None
    # Bytes written after this member's data (and descriptor), which no record describes.
    gap: bytes = b""

    def compressed(self) -> bytes:
        if self.method == DEFLATED:
            squeezer = zlib.compressobj(6, zlib.DEFLATED, -15)
            return squeezer.compress(self.data) + squeezer.flush()
        return self.data


def build_zip(
    members: Sequence[RawMember],
    *,
    prefix: bytes = b"",
    suffix: bytes = b"",
    comment: bytes = b"",
    adjust_offsets: bool = False,
    eocd_entries: int | None = None,
    central_offsets: Sequence[int | None] | None = None,
) -> bytes:
    """The zip of `members`, with `prefix` before it and `suffix` after it. Offsets count
    from the zip's own start (as `cat stub file.zip` leaves them) unless `adjust_offsets`
    (as `zip -A` makes them). `central_offsets` points entries at other local headers."""
    body = bytearray()
    central = bytearray()
    base = len(prefix) if adjust_offsets else 0
    for index, member in enumerate(members):
        data = member.compressed()
        crc = zlib.crc32(member.data)
        csize, usize = len(data), len(member.data)
        offset = len(body)
        deferred = bool(member.flags & 0x08)
        local_crc = member.local_crc if member.local_crc is not None else (0 if deferred else crc)
        local_sizes = member.local_sizes or ((0, 0) if deferred else (csize, usize))
        local_name = member.local_name if member.local_name is not None else member.name
        local_extra = member.local_extra if member.local_extra is not None else member.extra
        body += struct.pack(
            "<4s2B4HL2L2H",
            b"PK\x03\x04",
            member.local_version if member.local_version is not None else member.version,
            0,
            member.local_flags if member.local_flags is not None else member.flags,
            member.method,
            0,
            0x21,
            local_crc,
            local_sizes[0],
            local_sizes[1],
            len(local_name),
            len(local_extra),
        )
        body += local_name + local_extra + data
        if deferred:
            body += member.descriptor or struct.pack("<4s3L", b"PK\x07\x08", crc, csize, usize)
        body += member.gap
        if central_offsets is not None and central_offsets[index] is not None:
            offset = central_offsets[index]  # type: ignore[assignment]
        central += struct.pack(
            "<4s4B4HL2L5H2L",
            b"PK\x01\x02",
            20,
            3,
            member.version,
            0,
            member.flags,
            member.method,
            0,
            0x21,
            crc,
            csize,
            usize,
            len(member.name),
            len(member.extra),
            0,
            0,
            0,
            member.external_attr,
            offset + base,
        )
        central += member.name + member.extra
    count = len(members) if eocd_entries is None else eocd_entries
    eocd = struct.pack(
        "<4s4H2LH",
        b"PK\x05\x06",
        0,
        0,
        count,
        count,
        len(central),
        len(body) + base,
        len(comment),
    )
    return prefix + bytes(body) + bytes(central) + eocd + comment + suffix


def unicode_path_extra(name: bytes, alias: bytes) -> bytes:
    """An Info-ZIP Unicode Path extra field (0x7075) naming the member `alias`."""
    payload = b"\x01" + struct.pack("<L", zlib.crc32(name)) + alias
    return struct.pack("<HH", 0x7075, len(payload)) + payload
