"""Hazards outside info/: links and devices in the package body of both formats, a .conda's
pkg-*.tar.zst read like its info-*.tar.zst, and its zip held to stored members with nothing
around them. Every package is built here; the real ones (zlib's symbolic links) still pass."""

from __future__ import annotations

import bz2
import io
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import zstandard
from tests.formats.rawzip import RawMember, build_zip

from packhouse.errors import InvalidUpload, TooLarge, UnsafeArchive
from packhouse.formats.conda.archive import Limits, read_package

STEM = "demo-1.0-0"
INDEX = {"name": "demo", "version": "1.0", "build": "0", "build_number": 0, "subdir": "noarch"}
DATA = Path(__file__).resolve().parents[2] / "data" / "conda"
Member = tuple[tarfile.TarInfo, bytes]


def file(name: str, data: bytes = b"x") -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, link: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, b""


def tar(members: list[Member]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


INFO = [file("info/index.json", orjson.dumps(INDEX))]


def tar_bz2(body: list[Member]) -> bytes:
    return bz2.compress(tar([*INFO, *body]))


def conda_parts(body: list[Member], pkg_zst: bytes | None = None) -> dict[str, bytes]:
    squeeze = zstandard.ZstdCompressor().compress
    return {
        "metadata.json": b'{"conda_pkg_format_version": 2}',
        f"info-{STEM}.tar.zst": squeeze(tar(INFO)),
        f"pkg-{STEM}.tar.zst": pkg_zst if pkg_zst is not None else squeeze(tar(body)),
    }


def conda(body: list[Member], *, pkg_zst: bytes | None = None, method: int = 0) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in conda_parts(body, pkg_zst).items():
            archive.writestr(name, data, compress_type=method)
    return buffer.getvalue()


def read(data: bytes, filename: str, limits: Limits | None = None) -> str:
    return str(read_package(data, filename, limits=limits).index["name"])


# Bodies refused in both formats: the .tar.bz2's and the .conda's pkg-*.tar.zst.
BODIES: dict[str, tuple[list[Member], str]] = {
    "symlink to /etc/passwd": (
        [special("lib/passwd", tarfile.SYMTYPE, "/etc/passwd")],
        "'lib/passwd' is a symbolic link to the absolute path '/etc/passwd', outside the package",
    ),
    "symlink out with ..": (
        [special("lib/up", tarfile.SYMTYPE, "../../etc")],
        "'lib/up' is a symbolic link to '../../etc', which leaves the package",
    ),
    "symlink out through another symlink": (
        [special("d/s", tarfile.SYMTYPE, ".."), special("d/t", tarfile.SYMTYPE, "s/../x")],
        "'d/t' is a symbolic link to 's/../x', which leaves the package",
    ),
    "symlink out through a symlink that comes later": (
        [special("d/t", tarfile.SYMTYPE, "s/../x"), special("d/s", tarfile.SYMTYPE, "..")],
        "'d/t' is a symbolic link to 's/../x', which leaves the package",
    ),
    "symlink through a directory symlink that leaves": (
        [special("lib", tarfile.SYMTYPE, "bin/../.."), file("bin/x")],
        "'lib' is a symbolic link to 'bin/../..', which leaves the package",
    ),
    "symlink loop": (
        [special("a", tarfile.SYMTYPE, "b"), special("b", tarfile.SYMTYPE, "a")],
        "symbolic links nested too deep or in a loop",
    ),
    "symlink with a backslash": (
        [special("lib/w", tarfile.SYMTYPE, "..\\..\\x")],
        "'lib/w' is a symbolic link to '..\\\\..\\\\x', which has a backslash",
    ),
    "hardlink to ../../etc/passwd": (
        [special("lib/h", tarfile.LNKTYPE, "../../etc/passwd")],
        "'lib/h' is a hard link to '../../etc/passwd', outside the package",
    ),
    "hardlink to /etc/passwd": (
        [special("lib/h", tarfile.LNKTYPE, "/etc/passwd")],
        "'lib/h' is a hard link to '/etc/passwd', outside the package",
    ),
    "hardlink to a name not in the archive": (
        [special("lib/h", tarfile.LNKTYPE, "lib/missing")],
        "'lib/h' is a hard link to 'lib/missing', which is not a regular file earlier",
    ),
    "hardlink to a file that comes later": (
        [special("lib/h", tarfile.LNKTYPE, "lib/real"), file("lib/real")],
        "'lib/h' is a hard link to 'lib/real', which is not a regular file earlier",
    ),
    "hardlink to a symlink": (
        [special("lib/s", tarfile.SYMTYPE, "x"), special("lib/h", tarfile.LNKTYPE, "lib/s")],
        "'lib/h' is a hard link to 'lib/s', which is not a regular file earlier",
    ),
    "character device": (
        [special("dev/tty", tarfile.CHRTYPE)],
        "'dev/tty' is a character device",
    ),
    "block device": ([special("dev/sda", tarfile.BLKTYPE)], "'dev/sda' is a block device"),
    "FIFO": ([special("lib/pipe", tarfile.FIFOTYPE)], "'lib/pipe' is a FIFO"),
    "absolute name": ([file("/etc/x")], "archive member '/etc/x' has an absolute path"),
    "dot-dot name": ([file("../x")], "archive member '../x' has a '..' path component"),
    "unknown member type": ([special("lib/odd", b"Z")], "unknown tar type"),
}


@pytest.mark.parametrize("case", sorted(BODIES))
def test_tar_bz2_body_hazard_is_refused(case: str) -> None:
    body, message = BODIES[case]
    with pytest.raises(UnsafeArchive) as caught:
        read(tar_bz2(body), f"{STEM}.tar.bz2")
    assert message in str(caught.value)


@pytest.mark.parametrize("case", sorted(BODIES))
def test_conda_pkg_hazard_is_refused(case: str) -> None:
    body, message = BODIES[case]
    with pytest.raises(UnsafeArchive) as caught:
        read(conda(body), f"{STEM}.conda")
    assert message in str(caught.value)


def test_conda_pkg_member_in_info_is_refused() -> None:
    with pytest.raises(UnsafeArchive) as caught:
        read(conda([file("info/index.json", b"{}")]), f"{STEM}.conda")
    assert "pkg-*.tar.zst member 'info/index.json' belongs in info-*.tar.zst" in str(caught.value)


LEGITIMATE: list[Member] = [
    file("lib/libz.so.1.2.11", b"\x7fELF"),
    special("lib/libz.so.1", tarfile.SYMTYPE, "libz.so.1.2.11"),
    special("lib/libz.so", tarfile.SYMTYPE, "libz.so.1"),
    special("bin/tool", tarfile.SYMTYPE, "../lib/libz.so"),
    special("share/here", tarfile.SYMTYPE, "."),
    special("share/empty", tarfile.SYMTYPE, ""),  # real zlib .conda packages have these
    special("share/d", tarfile.SYMTYPE, "../lib"),
    special("share/via", tarfile.SYMTYPE, "d/../share"),  # d -> lib; lib/.. is the root
    special("lib/hard", tarfile.LNKTYPE, "lib/libz.so.1.2.11"),
    special("share/dir/", tarfile.DIRTYPE),
]


def test_links_inside_the_package_are_accepted() -> None:
    assert read(tar_bz2(LEGITIMATE), f"{STEM}.tar.bz2") == "demo"
    assert read(conda(LEGITIMATE), f"{STEM}.conda") == "demo"


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in (DATA / "conda" / "conda_format_repo").glob("*/zlib-*")
        if p.suffix in (".conda", ".bz2")
    ),
    ids=lambda p: p.name,
)
def test_real_packages_with_symlinks_are_accepted(path: Path) -> None:
    assert read_package(path).index["name"] == "zlib"


def test_real_zlib_conda_holds_symlinks() -> None:
    """The test above would prove nothing if the real package had no links."""
    path = DATA / "conda" / "conda_format_repo" / "linux-64" / "zlib-1.2.11-h7b6447c_3.conda"
    with zipfile.ZipFile(path) as archive:
        data = archive.read("pkg-zlib-1.2.11-h7b6447c_3.tar.zst")
    body = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    with tarfile.open(fileobj=io.BytesIO(body)) as opened:
        assert sum(m.issym() for m in opened.getmembers()) == 2


# --- the .conda zip itself ------------------------------------------------------------------


def conda_raw(**options: object) -> bytes:
    members = [RawMember(n.encode(), d, method=0) for n, d in conda_parts([file("lib/x")]).items()]
    return build_zip(members, **options)  # type: ignore[arg-type]


ZIP_CASES: dict[str, tuple[Callable[[], bytes], type[Exception], str]] = {
    "members deflated instead of stored": (
        lambda: conda([file("lib/x")], method=zipfile.ZIP_DEFLATED),
        UnsafeArchive,
        ".conda member 'metadata.json' is deflated; a .conda's members are stored",
    ),
    "trailing data after the zip": (
        lambda: conda_raw(suffix=b"#!/bin/sh\nrm -rf ~\n"),
        UnsafeArchive,
        ".conda has 19 bytes after the end of the zip archive",
    ),
    "data before the zip": (
        lambda: conda_raw(prefix=b"\x1f\x8b" + b"\0" * 30),
        UnsafeArchive,
        ".conda has 32 bytes before the zip archive",
    ),
    "local header naming another member": (
        lambda: build_zip(
            [
                RawMember(n.encode(), d, method=0, local_name=n.encode().replace(b"pkg", b"PKG"))
                for n, d in conda_parts([file("lib/x")]).items()
            ]
        ),
        UnsafeArchive,
        "in its local header",
    ),
    "pkg-*.tar.zst not zstd": (
        lambda: conda([], pkg_zst=b"not zstd at all"),
        InvalidUpload,
        "pkg-*.tar.zst is not valid zstd data",
    ),
    "pkg-*.tar.zst zstd but not a tar": (
        lambda: conda([], pkg_zst=zstandard.ZstdCompressor().compress(b"x" * 1000)),
        InvalidUpload,
        "damaged or truncated",
    ),
}


@pytest.mark.parametrize("case", sorted(ZIP_CASES))
def test_conda_zip_hazard_is_refused(case: str) -> None:
    make, error, message = ZIP_CASES[case]
    with pytest.raises(error) as caught:
        read(make(), f"{STEM}.conda")
    assert message in str(caught.value)


def test_the_raw_conda_is_accepted_without_the_trick() -> None:
    assert read(conda_raw(), f"{STEM}.conda") == "demo"


def test_pkg_decompressed_size_is_capped() -> None:
    data = conda([file("share/zeros", b"\0" * 300_000)])
    with pytest.raises(TooLarge, match=r"pkg-\*\.tar\.zst decompresses to more than 100000 bytes"):
        read(data, f"{STEM}.conda", Limits(max_pkg_decompressed=100_000))


def test_pkg_members_are_counted() -> None:
    data = conda([file(f"lib/f{i}") for i in range(20)])
    with pytest.raises(UnsafeArchive, match="more than 10 members"):
        read(data, f"{STEM}.conda", Limits(max_members=10))


def tar_blocks(info: tarfile.TarInfo, data: bytes, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    return info.tobuf(fmt) + data + b"\0" * (-len(data) % 512)


def index_blocks() -> bytes:
    info, data = INFO[0]
    return tar_blocks(info, data, tarfile.GNU_FORMAT)


def test_bad_sparse_map_in_a_package_is_a_refusal() -> None:
    info = tarfile.TarInfo("lib/holes")
    info.size = 4
    info.pax_headers = {"GNU.sparse.map": "0,x", "GNU.sparse.size": "4"}
    body = index_blocks() + tar_blocks(info, b"data") + b"\0" * 1024
    with pytest.raises(InvalidUpload, match="damaged or truncated"):
        read(bz2.compress(body), f"{STEM}.tar.bz2")


def test_sparse_member_is_refused() -> None:
    info = tarfile.TarInfo("lib/holes")
    info.size = 4
    info.pax_headers = {
        "GNU.sparse.offset": "0",
        "GNU.sparse.numbytes": "4",
        "GNU.sparse.size": "4",
    }
    body = index_blocks() + tar_blocks(info, b"data") + b"\0" * 1024
    with pytest.raises(UnsafeArchive, match="'lib/holes' is a GNU sparse file"):
        read(bz2.compress(body), f"{STEM}.tar.bz2")


def test_indexing_without_the_body_check_reads_info_only() -> None:
    """`packhouse conda index` (the operator's own files) skips the pkg-*.tar.zst walk."""
    data = conda([special("lib/passwd", tarfile.SYMTYPE, "/etc/passwd")])
    assert read_package(data, f"{STEM}.conda", check_body=False).index["name"] == "demo"
    with pytest.raises(UnsafeArchive):
        read_package(data, f"{STEM}.conda")


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (special("lib/a/.", tarfile.SYMTYPE, "x"), "has an empty or '.' path component"),
        (special("lib//a", tarfile.SYMTYPE, "x"), "has an empty or '.' path component"),
        (special("lib/", tarfile.SYMTYPE, "x"), "ends with '/' but is not a directory"),
        (special("lib/", tarfile.LNKTYPE, "info/index.json"), "ends with '/' but is not a"),
        (special(".", tarfile.SYMTYPE, "x"), "names the root but is not a directory"),
    ],
)
def test_names_tarfile_cannot_unpack_are_refused(member: Member, message: str) -> None:
    """Links so named make tarfile's extraction (conda's, pip's) recurse without end."""
    with pytest.raises(UnsafeArchive) as caught:
        read(tar_bz2([member]), f"{STEM}.tar.bz2")
    assert message in str(caught.value)


def test_a_leading_dot_slash_is_accepted() -> None:
    assert read(tar_bz2([file("./lib/x"), special("./", tarfile.DIRTYPE)]), f"{STEM}.tar.bz2")


def test_a_link_replaced_later_is_refused() -> None:
    """Symlink to /etc, a file written through it, then the link replaced by a harmless one:
    the end state looks fine, the unpacking writes /etc/passwd (found by the oracle test)."""
    members = [
        special("lib/b", tarfile.SYMTYPE, "/etc"),
        file("lib/b/passwd", b"root::0:0::/:/bin/sh\n"),
        special("lib/b", tarfile.SYMTYPE, "x"),
    ]
    for data, filename in (
        (tar_bz2(members), f"{STEM}.tar.bz2"),
        (conda(members), f"{STEM}.conda"),
    ):
        with pytest.raises(UnsafeArchive) as caught:
            read(data, filename)
        assert "'lib/b' appears twice, once as a link" in str(caught.value)
