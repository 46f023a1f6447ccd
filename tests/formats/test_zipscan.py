"""formats/zipscan.py on what real zip writers produce (ZIP64 records and extras, streamed
archives with data descriptors) and on damaged ZIP64 end records."""

from __future__ import annotations

import functools
import io
import struct
import zipfile

import pytest

from packhouse.errors import UnsafeArchive
from packhouse.formats.zipscan import scan_zip


def scan(data: bytes) -> list[str]:
    found = scan_zip(io.BytesIO(data), len(data), "zip", methods=(0, 8), max_members=100_000)
    return [entry.name for entry in found]


class Unseekable(io.RawIOBase):
    """A pipe-like output: zipfile then writes data descriptors (flag bit 3)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk: bytes) -> int:  # type: ignore[override]
        self.data += chunk
        return len(chunk)


def test_zip64_extras_from_zipfile_are_accepted() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("a.txt", "w", force_zip64=True) as member:
            member.write(b"hello" * 100)
        archive.writestr("b.txt", b"x")
    assert scan(buffer.getvalue()) == ["a.txt", "b.txt"]


@functools.cache
def many_members() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index in range(70_000):  # more than 65,535: a ZIP64 end record
            archive.writestr(f"f{index}", b"")
    return buffer.getvalue()


def test_zip64_end_record_is_accepted() -> None:
    data = many_members()
    assert b"PK\x06\x06" in data
    assert len(scan(data)) == 70_000


@pytest.mark.parametrize("zip64", [False, True])
def test_streamed_archives_with_data_descriptors_are_accepted(zip64: bool) -> None:
    out = Unseekable()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("b.txt", "w", force_zip64=zip64) as member:
            member.write(b"yo" * 100)
        archive.writestr("c.txt", b"hi" * 50)
    data = bytes(out.data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert all(info.flag_bits & 0x08 for info in archive.infolist())
    assert scan(data) == ["b.txt", "c.txt"]


def small_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", b"a")
    return buffer.getvalue()


def test_zip64_sizes_announced_without_a_zip64_record_are_refused() -> None:
    data = bytearray(small_zip())
    eocd = data.rfind(b"PK\x05\x06")
    struct.pack_into("<L", data, eocd + 16, 0xFFFFFFFF)  # central directory offset
    with pytest.raises(UnsafeArchive, match="announces ZIP64 sizes but has no ZIP64 end record"):
        scan(bytes(data))


def test_zip64_locator_pointing_elsewhere_is_refused() -> None:
    data = bytearray(many_members())
    locator = data.rfind(b"PK\x06\x07")
    struct.pack_into("<Q", data, locator + 8, 0)
    with pytest.raises(UnsafeArchive, match="ZIP64 locator that points to the wrong place"):
        scan(bytes(data))


def test_zip64_end_record_with_extensible_data_is_refused() -> None:
    data = bytearray(many_members())
    record = data.rfind(b"PK\x06\x06")
    struct.pack_into("<Q", data, record + 4, 60)
    with pytest.raises(UnsafeArchive, match="damaged or extended ZIP64 end record"):
        scan(bytes(data))


def test_more_members_than_allowed_are_refused_before_reading_them() -> None:
    data = many_members()
    with pytest.raises(UnsafeArchive, match="has 70000 members; at most 10 are allowed"):
        scan_zip(io.BytesIO(data), len(data), "zip", methods=(0,), max_members=10)


def test_multi_disk_archives_are_refused() -> None:
    data = bytearray(small_zip())
    eocd = data.rfind(b"PK\x05\x06")
    struct.pack_into("<H", data, eocd + 4, 1)  # number of this disk
    with pytest.raises(UnsafeArchive, match="spans several disks"):
        scan(bytes(data))
