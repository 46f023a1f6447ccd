"""Wheels that two readers would read differently, or that Python's zipfile cannot read at
all, are refused with the reason; each archive is written record by record here."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.formats.rawzip import STORED, RawMember, build_zip, unicode_path_extra

from packhouse.errors import UnsafeArchive
from packhouse.formats.pypi.archives import ArchiveLimits, read_metadata
from packhouse.formats.pypi.filenames import parse_dist_filename

WHEEL = "demo-1.0-py3-none-any.whl"
METADATA = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
META_NAME = b"demo-1.0.dist-info/METADATA"


def members() -> list[RawMember]:
    return [
        RawMember(b"demo/__init__.py", b"VERSION = '1.0'\n"),
        RawMember(META_NAME, METADATA),
        RawMember(b"demo-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n"),
        RawMember(b"demo-1.0.dist-info/RECORD", b""),
    ]


def with_changed(index: int, **changes: object) -> list[RawMember]:
    found = members()
    for key, value in changes.items():
        setattr(found[index], key, value)
    return found


def read(tmp_path: Path, data: bytes, limits: ArchiveLimits | None = None) -> bytes:
    path = tmp_path / WHEEL
    path.write_bytes(data)
    return read_metadata(path, parse_dist_filename(WHEEL), limits or ArchiveLimits())


def refusal(tmp_path: Path, data: bytes, limits: ArchiveLimits | None = None) -> str:
    with pytest.raises(UnsafeArchive) as caught:
        read(tmp_path, data, limits)
    return str(caught.value)


def test_the_raw_writer_makes_a_wheel_that_is_accepted(tmp_path: Path) -> None:
    data = build_zip(members())
    assert read(tmp_path, data) == METADATA
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read(META_NAME.decode()) == METADATA


# --- what made zipfile raise (answered 500 before) ---------------------------------------------

NOT_IMPLEMENTED: dict[str, tuple[list[RawMember], str]] = {
    "strong encryption (bit 6)": (
        with_changed(1, flags=0x40),
        "'demo-1.0.dist-info/METADATA' is flagged as strongly encrypted (flag bit 6)",
    ),
    "patched data (bit 5)": (
        with_changed(1, flags=0x20),
        "'demo-1.0.dist-info/METADATA' is flagged as compressed patched data (flag bit 5)",
    ),
    "version 9.9": (
        with_changed(1, version=99),
        "'demo-1.0.dist-info/METADATA' needs zip version 9.9 to extract; at most 6.3",
    ),
    "version 9.9 in the local header only": (
        with_changed(1, local_version=99),
        "'demo-1.0.dist-info/METADATA' needs zip version 9.9 to extract",
    ),
    "traditional encryption (bit 0)": (
        with_changed(0, flags=0x01),
        "'demo/__init__.py' is encrypted (flag bit 0)",
    ),
    "masked headers (bit 13)": (
        with_changed(0, flags=0x2000),
        "'demo/__init__.py' has masked local headers (flag bit 13)",
    ),
    "reserved flag bit 4": (with_changed(0, flags=0x10), "sets the reserved flag bit 4"),
    "bzip2 member": (with_changed(0, method=12), "uses compression method 12"),
}


@pytest.mark.parametrize("case", sorted(NOT_IMPLEMENTED))
def test_what_zipfile_cannot_read_is_refused(tmp_path: Path, case: str) -> None:
    found, message = NOT_IMPLEMENTED[case]
    assert message in refusal(tmp_path, build_zip(found))


# --- bytes outside the zip: polyglots, stubs, concatenations -----------------------------------


def tar_of(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_zip_polyglot() -> bytes:
    """A tar whose first member's data is the zip: tar(1) and zipfile both open it."""
    zip_bytes = build_zip(members())
    tar = tar_of("payload.zip", zip_bytes)
    with tarfile.open(fileobj=io.BytesIO(tar)) as opened:
        assert opened.getnames() == ["payload.zip"]
    return tar


OUTSIDE: dict[str, tuple[Callable[[], bytes], str]] = {
    "stub before (offsets not adjusted)": (
        lambda: build_zip(members(), prefix=b"#!/bin/sh\nexit 0\n"),
        "wheel has 17 bytes before the zip archive",
    ),
    "stub before (offsets adjusted, zip -A)": (
        lambda: build_zip(members(), prefix=b"MZ" + b"\0" * 62, adjust_offsets=True),
        "wheel has 64 bytes before the zip archive",
    ),
    "data after": (
        lambda: build_zip(members(), suffix=b"trailing payload"),
        "wheel has 16 bytes after the end of the zip archive",
    ),
    "a second zip after": (
        lambda: build_zip(members()) + build_zip([RawMember(b"evil.py", b"x")]),
        "bytes before the zip archive",
    ),
    "tar+zip polyglot (zip inside a tar member)": (
        tar_zip_polyglot,
        "bytes after the end of the zip archive",
    ),
    "tar+zip polyglot (tar header in front)": (
        lambda: tar_of("x", b"y")[:512] + build_zip(members()),
        "wheel has 512 bytes before the zip archive",
    ),
    "gzip+zip polyglot (gzip stream in front)": (
        lambda: gzip.compress(b"import os\n") + build_zip(members()),
        "bytes before the zip archive",
    ),
    "zip+gzip polyglot (gzip stream after)": (
        lambda: build_zip(members()) + gzip.compress(b"import os\n"),
        "bytes after the end of the zip archive",
    ),
    "hidden bytes between members": (
        lambda: build_zip(with_changed(0, gap=b"hidden")),
        "'demo-1.0.dist-info/METADATA' does not start where the previous member ends",
    ),
    "hidden bytes before the central directory": (
        lambda: build_zip(with_changed(3, gap=b"hidden")),
        "6 bytes between its last member and its central directory",
    ),
}


@pytest.mark.parametrize("case", sorted(OUTSIDE))
def test_bytes_outside_the_members_are_refused(tmp_path: Path, case: str) -> None:
    make, message = OUTSIDE[case]
    data = make()
    assert message in refusal(tmp_path, data)


def test_python_zipfile_would_have_read_the_polyglots(tmp_path: Path) -> None:
    """The refusals are not of unreadable files: pip's reader opens every one of them."""
    for case in (
        "gzip+zip polyglot (gzip stream in front)",
        "tar+zip polyglot (tar header in front)",
    ):
        with zipfile.ZipFile(io.BytesIO(OUTSIDE[case][0]())) as archive:
            assert archive.read(META_NAME.decode()) == METADATA


def test_an_archive_comment_is_allowed(tmp_path: Path) -> None:
    assert read(tmp_path, build_zip(members(), comment=b"built by hand")) == METADATA


# --- local headers against the central directory ----------------------------------------------

DISAGREE: dict[str, tuple[list[RawMember], str]] = {
    "other name in the local header": (
        with_changed(0, local_name=b"demo/evil.py"),
        "'demo/__init__.py' is named b'demo/evil.py' in its local header",
    ),
    "other name of the same length, METADATA": (
        with_changed(1, local_name=b"demo-1.0.dist-info/METADATB"),
        "installers and scanners would see different files",
    ),
    "other sizes in the local header": (
        with_changed(1, local_sizes=(5, 5)),
        "other sizes or CRC in its local header",
    ),
    "other CRC in the local header": (
        with_changed(1, local_crc=0x12345678),
        "other sizes or CRC in its local header",
    ),
    "other flags in the local header": (
        with_changed(1, local_flags=0x0800),
        "other flags or compression in its local header",
    ),
    "data descriptor that disagrees": (
        with_changed(1, flags=0x08, descriptor=struct.pack("<4s3L", b"PK\x07\x08", 1, 2, 3)),
        "'demo-1.0.dist-info/METADATA' has a data descriptor that disagrees",
    ),
    "data descriptor after stored data": (
        with_changed(1, flags=0x08, method=STORED),
        "has a data descriptor (flag bit 3) after data that is not deflated",
    ),
    "data descriptor with a local size that is neither zero nor the real one": (
        with_changed(1, flags=0x08, local_sizes=(1, 1)),
        "other sizes or CRC in its local header",
    ),
    "duplicate member": (
        [*members(), RawMember(b"demo/__init__.py", b"import evil\n")],
        "wheel has more than one member named 'demo/__init__.py'",
    ),
}


@pytest.mark.parametrize("case", sorted(DISAGREE))
def test_local_headers_must_agree_with_the_directory(tmp_path: Path, case: str) -> None:
    found, message = DISAGREE[case]
    assert message in refusal(tmp_path, build_zip(found))


def test_consistent_data_descriptors_are_accepted(tmp_path: Path) -> None:
    """As written by zip tools streaming to a pipe; uv accepts them when they agree."""
    found = members()
    for member in found:
        member.flags = 0x08
    data = build_zip(found)
    assert read(tmp_path, data) == METADATA
    # ...and without the optional descriptor signature
    found = with_changed(1, flags=0x08)
    found[1].descriptor = struct.pack(
        "<3L", zlib.crc32(METADATA), len(found[1].compressed()), len(METADATA)
    )
    assert read(tmp_path, build_zip(found)) == METADATA


def test_two_entries_sharing_one_local_header_are_refused(tmp_path: Path) -> None:
    """The overlapping-file zip bomb: many directory entries pointing at one member's data."""
    found = [*members(), RawMember(b"demo/copy.py", b"VERSION = '1.0'\n")]
    data = build_zip(found, central_offsets=[None, None, None, None, 0])
    assert "does not start where the previous member ends" in refusal(tmp_path, data)


def test_entry_count_must_match_the_end_record(tmp_path: Path) -> None:
    data = build_zip(members(), eocd_entries=3)
    assert "central directory holds 4 entries but its end record says 3" in refusal(tmp_path, data)


# --- names ----------------------------------------------------------------------------------


def test_non_ascii_names_need_the_utf8_flag(tmp_path: Path) -> None:
    unflagged = [*members(), RawMember("demo/café.py".encode(), b"")]
    assert "has a non-ASCII name without the UTF-8 flag (bit 11)" in refusal(
        tmp_path, build_zip(unflagged)
    )
    latin1 = [*members(), RawMember("demo/café.py".encode("latin-1"), b"")]
    assert "without the UTF-8 flag" in refusal(tmp_path, build_zip(latin1))
    flagged_but_not_utf8 = [*members(), RawMember(b"demo/caf\xe9.py", b"", flags=0x0800)]
    assert "is flagged as a UTF-8 name (bit 11) but is not UTF-8" in refusal(
        tmp_path, build_zip(flagged_but_not_utf8)
    )
    flagged = [*members(), RawMember("demo/café.py".encode(), b"", flags=0x0800)]
    assert read(tmp_path, build_zip(flagged)) == METADATA


def test_unicode_path_extra_must_name_the_same_member(tmp_path: Path) -> None:
    name = b"demo/a.py"
    other = [*members(), RawMember(name, b"", extra=unicode_path_extra(name, b"demo/b.py"))]
    assert "carries an Info-ZIP Unicode Path" in refusal(tmp_path, build_zip(other))
    same = [*members(), RawMember(name, b"", extra=unicode_path_extra(name, name))]
    assert read(tmp_path, build_zip(same)) == METADATA


def test_corrupt_extra_field_is_refused(tmp_path: Path) -> None:
    found = [*members(), RawMember(b"demo/a.py", b"", extra=struct.pack("<HH", 0xCAFE, 40))]
    assert "has a corrupt extra field 0xcafe" in refusal(tmp_path, build_zip(found))


# --- bombs by total -----------------------------------------------------------------------------


def bomb(count: int, size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(META_NAME.decode(), METADATA)
        archive.writestr("demo-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n")
        archive.writestr("demo-1.0.dist-info/RECORD", b"")
        for index in range(count):
            archive.writestr(f"demo/zeros{index}.bin", b"\0" * size)
    return buffer.getvalue()


def test_many_members_each_under_the_ratio_floor_are_refused_by_their_total(
    tmp_path: Path,
) -> None:
    data = bomb(80, 1_000_000)  # 80 MB of zeros in about 80 kB; each member below 1 MiB
    message = refusal(tmp_path, data)
    assert "wheel members declare 80000" in message
    assert "a ratio above 100:1" in message
    assert "possible decompression bomb" in message


def test_the_total_ratio_is_not_applied_to_small_archives(tmp_path: Path) -> None:
    assert read(tmp_path, bomb(7, 1_000_000)) == METADATA  # 7 MB: under the 8 MiB floor


def test_the_total_cap_applies_whatever_the_ratio(tmp_path: Path) -> None:
    message = refusal(tmp_path, bomb(3, 400_000), ArchiveLimits(max_total_bytes=1_000_000))
    assert "wheel members declare more than 1000000 bytes uncompressed in total" in message


# --- entry_points.txt ---------------------------------------------------------------------------


def wheel_with_entry_points(text: bytes) -> bytes:
    return build_zip([*members(), RawMember(b"demo-1.0.dist-info/entry_points.txt", text)])


@pytest.mark.parametrize(
    "name", ["../../bin/x", "/usr/bin/evil", "sub/dir", "a\\b", "..", ".", ".hidden", "-rf", "x y"]
)
@pytest.mark.parametrize("section", ["console_scripts", "gui_scripts"])
def test_path_like_script_names_are_refused(tmp_path: Path, section: str, name: str) -> None:
    data = wheel_with_entry_points(f"[{section}]\n{name} = demo:main\n".encode())
    assert f"entry_points.txt [{section}] names the script {name!r}" in refusal(tmp_path, data)


def test_plain_script_names_are_accepted(tmp_path: Path) -> None:
    text = (
        b"# comment\n[console_scripts]\ndemo = demo:main\ndemo-cli=demo.cli:run [extra]\n"
        b"demo_2.1 = demo:main\n\n[gui_scripts]\nDemoGui = demo.gui:main\n"
        b"[other.plugins]\n../anything = demo:plugin\n"
    )
    assert read(tmp_path, wheel_with_entry_points(text)) == METADATA


def test_entry_points_not_utf8_is_refused(tmp_path: Path) -> None:
    data = wheel_with_entry_points(b"[console_scripts]\ncaf\xe9 = demo:main\n")
    assert "entry_points.txt is not UTF-8" in refusal(tmp_path, data)


def test_every_bad_script_is_listed(tmp_path: Path) -> None:
    data = wheel_with_entry_points(b"[console_scripts]\n../a = m:f\n/b = m:f\nnot an entry\n")
    with pytest.raises(UnsafeArchive) as caught:
        read(tmp_path, data)
    assert len(caught.value.problems) == 3
    assert "which is not 'name = module:function'" in caught.value.problems[2]


def test_a_real_wheel_with_entry_points_is_accepted() -> None:
    path = Path(__file__).parents[2] / "data" / "pypi" / "jinja2-3.1.6-py3-none-any.whl"
    with zipfile.ZipFile(path) as archive:
        assert "jinja2-3.1.6.dist-info/entry_points.txt" in archive.namelist()
    assert b"Name: Jinja2" in read_metadata(path, parse_dist_filename(path.name), ArchiveLimits())
