"""Every archive hazard is refused with a clear message, from archives built here."""

from __future__ import annotations

import bz2
import io
import tarfile
import zipfile
from collections.abc import Callable

import orjson
import pytest
import zstandard

from packhouse.errors import InvalidUpload, TooLarge, UnsafeArchive
from packhouse.formats.conda.archive import Limits, read_package

INDEX = {
    "name": "demo",
    "version": "1.0",
    "build": "0",
    "build_number": 0,
    "subdir": "noarch",
    "depends": [],
}
Member = tuple[tarfile.TarInfo, bytes]


def _file(name: str, data: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


def _tar(members: list[Member]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def _info(
    index: dict[str, object] | None = None, extra: list[Member] | None = None
) -> list[Member]:
    return [_file("info/index.json", orjson.dumps(index or INDEX)), *(extra or [])]


def _conda(
    stem: str = "demo-1.0-0",
    info: list[Member] | None = None,
    zip_names: list[str] | None = None,
    info_zst: bytes | None = None,
) -> bytes:
    buffer = io.BytesIO()
    compressor = zstandard.ZstdCompressor()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in zip_names or ["metadata.json", f"info-{stem}.tar.zst", f"pkg-{stem}.tar.zst"]:
            if name == "metadata.json":
                zf.writestr(name, b'{"conda_pkg_format_version": 2}')
            elif name.startswith("info-"):
                zf.writestr(name, info_zst or compressor.compress(_tar(info or _info())))
            else:
                zf.writestr(name, compressor.compress(_tar([_file("share/x", b"x")])))
    return buffer.getvalue()


def _tar_bz2(members: list[Member]) -> bytes:
    return bz2.compress(_tar(members))


def test_crafted_valid_conda_and_tar_bz2_are_accepted() -> None:
    assert read_package(_conda(), "demo-1.0-0.conda").index["name"] == "demo"
    assert read_package(_tar_bz2(_info()), "demo-1.0-0.tar.bz2", subdir="noarch").index == INDEX


HAZARDS: dict[str, tuple[Callable[[], bytes], str, type[Exception], str]] = {
    "symlink in info/": (
        lambda: _conda(info=_info(extra=[_special("info/link", tarfile.SYMTYPE, "/etc/passwd")])),
        "demo-1.0-0.conda",
        UnsafeArchive,
        "'info/link' is a symbolic link",
    ),
    "hard link in info/": (
        lambda: _conda(
            info=_info(extra=[_special("info/hard", tarfile.LNKTYPE, "info/index.json")])
        ),
        "demo-1.0-0.conda",
        UnsafeArchive,
        "'info/hard' is a hard link",
    ),
    "device in info/": (
        lambda: _conda(info=_info(extra=[_special("info/dev", tarfile.CHRTYPE)])),
        "demo-1.0-0.conda",
        UnsafeArchive,
        "'info/dev' is a character device",
    ),
    "fifo in info/": (
        lambda: _conda(info=_info(extra=[_special("info/fifo", tarfile.FIFOTYPE)])),
        "demo-1.0-0.conda",
        UnsafeArchive,
        "'info/fifo' is a FIFO",
    ),
    "dot-dot path": (
        lambda: _conda(info=_info(extra=[_file("info/../../evil", b"x")])),
        "demo-1.0-0.conda",
        UnsafeArchive,
        "has a '..' path component",
    ),
    "absolute path": (
        lambda: _tar_bz2(_info(extra=[_file("/etc/evil", b"x")])),
        "demo-1.0-0.tar.bz2",
        UnsafeArchive,
        "'/etc/evil' has an absolute path",
    ),
    "symlink in info/ of tar.bz2": (
        lambda: _tar_bz2(
            _info(extra=[_special("info/about.json", tarfile.SYMTYPE, "/etc/passwd")])
        ),
        "demo-1.0-0.tar.bz2",
        UnsafeArchive,
        "is a symbolic link",
    ),
    "member outside info/ in info tarball": (
        lambda: _conda(info=_info(extra=[_file("bin/evil", b"x")])),
        "demo-1.0-0.conda",
        UnsafeArchive,
        "'bin/evil' is outside info/",
    ),
    "extra zip member": (
        lambda: _conda(
            zip_names=["metadata.json", "info-demo-1.0-0.tar.zst", "pkg-demo-1.0-0.tar.zst", "x"]
        ),
        "demo-1.0-0.conda",
        UnsafeArchive,
        "must hold exactly metadata.json",
    ),
    "missing zip member": (
        lambda: _conda(zip_names=["metadata.json", "info-demo-1.0-0.tar.zst"]),
        "demo-1.0-0.conda",
        UnsafeArchive,
        "must hold exactly metadata.json",
    ),
    "filename does not match index.json": (
        lambda: _conda("other-1.0-0"),
        "other-1.0-0.conda",
        InvalidUpload,
        "does not match info/index.json: expected 'demo-1.0-0.conda'",
    ),
    "bad package name": (
        lambda: _conda("Bad__Name-1.0-0", info=_info({**INDEX, "name": "Bad__Name"})),
        "Bad__Name-1.0-0.conda",
        InvalidUpload,
        "package name 'Bad__Name' is not valid",
    ),
    "bad build string": (
        lambda: _tar_bz2(_info({**INDEX, "build": "0@x"})),
        "demo-1.0-0@x.tar.bz2",
        InvalidUpload,
        "build string '0@x' is not valid",
    ),
    "missing required key": (
        lambda: _conda(info=_info({k: v for k, v in INDEX.items() if k != "build_number"})),
        "demo-1.0-0.conda",
        InvalidUpload,
        "'build_number' is required",
    ),
    "wrong type": (
        lambda: _conda(info=_info({**INDEX, "depends": "python"})),
        "demo-1.0-0.conda",
        InvalidUpload,
        "'depends' must be a list of strings",
    ),
    "index.json not JSON": (
        lambda: _conda(info=[_file("info/index.json", b"{nope")]),
        "demo-1.0-0.conda",
        InvalidUpload,
        "info/index.json is not valid JSON",
    ),
    "index.json missing": (
        lambda: _conda(info=[_file("info/about.json", b"{}")]),
        "demo-1.0-0.conda",
        InvalidUpload,
        "info/index.json is missing",
    ),
    "not a zip": (
        lambda: b"not a zip at all",
        "demo-1.0-0.conda",
        InvalidUpload,
        ".conda is not a valid zip file",
    ),
    "truncated bz2": (
        lambda: _tar_bz2(_info())[:40],
        "demo-1.0-0.tar.bz2",
        InvalidUpload,
        "damaged or truncated",
    ),
    "not a package filename": (
        lambda: _conda(),
        "demo.zip",
        InvalidUpload,
        "is not a conda package filename",
    ),
}


@pytest.mark.parametrize("case", sorted(HAZARDS))
def test_hazard_is_refused(case: str) -> None:
    make, filename, error, message = HAZARDS[case]
    with pytest.raises(error) as info:
        read_package(make(), filename)
    assert message in str(info.value)


def test_every_problem_is_listed() -> None:
    index = {**INDEX, "name": "Bad__Name", "build": "0@x"}
    with pytest.raises(InvalidUpload) as info:
        read_package(_tar_bz2(_info(index)), "x-1.0-0.tar.bz2")
    assert len(info.value.problems) == 3


def test_oversize_member_is_refused() -> None:
    data = _conda(info=_info(extra=[_file("info/about.json", b"{}" + b" " * 5000)]))
    with pytest.raises(TooLarge, match=r"'info/about\.json' is 5002 bytes, over the limit of 4096"):
        read_package(data, "demo-1.0-0.conda", limits=Limits(max_member_size=4096))


def test_oversize_info_total_is_refused() -> None:
    data = _conda(info=_info(extra=[_file(f"info/f{i}", b"x" * 1000) for i in range(10)]))
    with pytest.raises(TooLarge, match=r"info/ holds more than 5000 bytes"):
        read_package(data, "demo-1.0-0.conda", limits=Limits(max_info_size=5000))


def test_too_many_members_is_refused() -> None:
    data = _tar_bz2(_info(extra=[_file(f"f{i}", b"") for i in range(20)]))
    with pytest.raises(UnsafeArchive, match="more than 10 members"):
        read_package(data, "demo-1.0-0.tar.bz2", limits=Limits(max_members=10))


def test_bz2_decompressed_cap() -> None:
    data = _tar_bz2(_info(extra=[_file("big", b"\0" * 200_000)]))
    with pytest.raises(TooLarge, match="decompresses to more than 100000 bytes"):
        read_package(data, "demo-1.0-0.tar.bz2", limits=Limits(max_bz2_decompressed=100_000))


def test_zstd_frame_with_huge_window_is_refused() -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=30, write_content_size=0)
    compressor = zstandard.ZstdCompressor(compression_params=params)
    writer = io.BytesIO()
    with compressor.stream_writer(writer, closefd=False) as stream:
        stream.write(_tar(_info()))
    with pytest.raises(UnsafeArchive, match="zstd window larger than the limit of 134217728"):
        read_package(_conda(info_zst=writer.getvalue()), "demo-1.0-0.conda")
