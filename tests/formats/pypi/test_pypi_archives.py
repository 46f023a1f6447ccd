from __future__ import annotations

import gzip
import io
import shutil
import stat
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from packhouse.errors import UnsafeArchive
from packhouse.formats.pypi.archives import (
    ArchiveLimits,
    read_metadata,
    read_sdist_metadata,
    read_wheel_metadata,
)
from packhouse.formats.pypi.filenames import parse_dist_filename

DATA = Path(__file__).parents[2] / "data" / "pypi"
LIMITS = ArchiveLimits()
METADATA = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
WHEEL_NAME = "demo-1.0-py3-none-any.whl"
GOOD_WHEEL: dict[str, bytes] = {
    "demo/__init__.py": b"",
    "demo-1.0.dist-info/METADATA": METADATA,
    "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\n",
    "demo-1.0.dist-info/RECORD": b"",
}

Member = tuple[str | zipfile.ZipInfo, bytes]


def make_zip(path: Path, members: Sequence[Member]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicates we make on purpose
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members:
                archive.writestr(name, data)
    return path


def make_wheel(tmp_path: Path, extra: Sequence[Member] = (), drop: tuple[str, ...] = ()) -> Path:
    members: list[Member] = [(n, d) for n, d in GOOD_WHEEL.items() if n not in drop]
    return make_zip(tmp_path / WHEEL_NAME, [*members, *extra])


def refusal(path: Path, filename: str | None = None, limits: ArchiveLimits = LIMITS) -> str:
    dist = parse_dist_filename(filename or path.name)
    with pytest.raises(UnsafeArchive) as caught:
        read_metadata(path, dist, limits)
    return str(caught.value)


# --- real files ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DATA.iterdir()), ids=lambda p: p.name)
def test_real_distributions_yield_their_metadata(path: Path) -> None:
    dist = parse_dist_filename(path.name)
    data = read_metadata(path, dist, LIMITS)
    assert data.startswith(b"Metadata-Version: ")
    assert f"\nVersion: {dist.version}\n".encode() in data


def test_dispatch_by_kind() -> None:
    wheel = DATA / "six-1.16.0-py2.py3-none-any.whl"
    sdist = DATA / "six-1.16.0.tar.gz"
    assert b"Metadata-Version: 2.1" in read_wheel_metadata(
        wheel, parse_dist_filename(wheel.name), LIMITS
    )
    assert b"Metadata-Version: 1.2" in read_sdist_metadata(
        sdist, parse_dist_filename(sdist.name), LIMITS
    )


def test_good_built_wheel(tmp_path: Path) -> None:
    path = make_wheel(tmp_path)
    assert read_metadata(path, parse_dist_filename(WHEEL_NAME), LIMITS) == METADATA


# --- wheel hazards ---------------------------------------------------------------------------


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / WHEEL_NAME
    path.write_bytes(b"this is not a zip file at all" * 10)
    assert "wheel is not a valid zip file" in refusal(path)


def test_truncated_zip(tmp_path: Path) -> None:
    real = (DATA / "six-1.16.0-py2.py3-none-any.whl").read_bytes()
    path = tmp_path / "six-1.16.0-py2.py3-none-any.whl"
    path.write_bytes(real[: len(real) // 2])
    assert "wheel is not a valid zip file" in refusal(path)


def test_duplicate_members(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, [("demo/__init__.py", b"again")])
    assert "wheel has more than one member named 'demo/__init__.py'" in refusal(path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../x", "wheel member '../x' has a '..' path component"),
        ("demo/../../x", "wheel member 'demo/../../x' has a '..' path component"),
        ("/etc/passwd", "wheel member '/etc/passwd' has an absolute path"),
        ("C:/evil.py", "wheel member 'C:/evil.py' has an absolute path"),
        ("demo\\evil.py", "has a backslash in its name"),
        ("demo/a\x01b.py", "has a control character in its name"),
    ],
)
def test_unsafe_member_names(tmp_path: Path, name: str, message: str) -> None:
    path = make_wheel(tmp_path, [(name, b"x")])
    assert message in refusal(path)


def test_nul_in_member_name(tmp_path: Path) -> None:
    # zipfile cuts names at NUL when writing, so write a placeholder and patch the bytes.
    path = make_wheel(tmp_path, [("demo/aQQb.py", b"x")])
    path.write_bytes(path.read_bytes().replace(b"aQQb", b"a\x00Qb"))
    assert "has a NUL byte in its name" in refusal(path)


def test_symlink_member(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("demo/link.py")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = make_wheel(tmp_path, [(link, b"/etc/passwd")])
    assert "wheel member 'demo/link.py' is a symbolic link" in refusal(path)


@pytest.mark.parametrize(("method", "number"), [(zipfile.ZIP_BZIP2, 12), (zipfile.ZIP_LZMA, 14)])
def test_other_compression_methods(tmp_path: Path, method: int, number: int) -> None:
    info = zipfile.ZipInfo("demo/data.py")
    info.compress_type = method
    path = make_wheel(tmp_path, [(info, b"x = 1\n" * 10)])
    assert (
        f"wheel member 'demo/data.py' uses compression method {number};"
        " only stored (0) and deflated (8) are accepted"
    ) in refusal(path)


def test_encrypted_member(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, [("demo/secret.py", b"x")])
    # zipfile cannot write encrypted members: set bit 0 of the flags (offsets 6 and 8).
    patch_header(path, "demo/secret.py", 6, 8, "<H", 0x1)
    assert "wheel member 'demo/secret.py' is encrypted" in refusal(path)


def test_zip_bomb_by_ratio(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, [("demo/zeros.bin", b"\0" * (4 * 1024 * 1024))])
    message = refusal(path)
    assert "wheel member 'demo/zeros.bin' declares a compression ratio above 200:1" in message
    assert "possible decompression bomb" in message


def test_small_members_are_not_ratio_checked(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, [("demo/zeros.bin", b"\0" * 500_000)])
    assert read_metadata(path, parse_dist_filename(WHEEL_NAME), LIMITS) == METADATA


def test_zip_bomb_by_declared_total(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, [(f"demo/m{i}.py", b"y = 2\n" * 100) for i in range(5)])
    message = refusal(path, limits=ArchiveLimits(max_total_bytes=2000))
    assert "wheel members declare more than 2000 bytes uncompressed in total" in message


def test_member_over_size_limit(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, [("demo/big.py", b"z = 3\n" * 1000)])
    message = refusal(path, limits=ArchiveLimits(max_member_bytes=5000))
    assert "wheel member 'demo/big.py' declares 6000 bytes uncompressed; the limit is 5000" in (
        message
    )


def test_too_many_members(tmp_path: Path) -> None:
    path = make_wheel(tmp_path)
    assert "wheel has 4 members; at most 3 are allowed" in refusal(
        path, limits=ArchiveLimits(max_members=3)
    )


def test_metadata_over_its_limit(tmp_path: Path) -> None:
    path = make_wheel(tmp_path)
    message = refusal(path, limits=ArchiveLimits(max_metadata_bytes=10))
    assert f"wheel member 'demo-1.0.dist-info/METADATA' declares {len(METADATA)} bytes" in message


def patch_header(
    path: Path, member: str, local_at: int, central_at: int, fmt: str, value: int
) -> None:
    """Rewrite one field of a member's local header and central directory entry."""
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo(member).header_offset
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset + local_at, value)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + name_len] == member.encode():
            struct.pack_into(fmt, data, central + central_at, value)
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def test_declared_size_is_not_trusted_when_decompressing(tmp_path: Path) -> None:
    path = make_wheel(tmp_path)
    # Uncompressed size: local header offset 22, central directory offset 24.
    patch_header(path, "demo-1.0.dist-info/METADATA", 22, 24, "<I", 5)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("demo-1.0.dist-info/METADATA").file_size == 5
    message = refusal(path)
    assert "wheel member 'demo-1.0.dist-info/METADATA' cannot be read" in message


@pytest.mark.parametrize("missing", ["METADATA", "WHEEL", "RECORD"])
def test_missing_dist_info_files(tmp_path: Path, missing: str) -> None:
    path = make_wheel(tmp_path, drop=(f"demo-1.0.dist-info/{missing}",))
    assert f"wheel is missing demo-1.0.dist-info/{missing}" in refusal(path)


def test_no_dist_info(tmp_path: Path) -> None:
    path = make_zip(tmp_path / WHEEL_NAME, [("demo/__init__.py", b"")])
    assert "wheel has no top-level '.dist-info' directory" in refusal(path)


def test_two_dist_infos(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, [("other-2.0.dist-info/METADATA", METADATA)])
    assert "wheel has 2 top-level '.dist-info' directories" in refusal(path)


def test_dist_info_of_another_project(tmp_path: Path) -> None:
    members = [(n.replace("demo-1.0", "other-1.0"), d) for n, d in GOOD_WHEEL.items()]
    path = make_zip(tmp_path / WHEEL_NAME, members)
    assert "wheel's directory 'other-1.0.dist-info' does not match the filename's project" in (
        refusal(path)
    )


def test_dist_info_written_unnormalised_is_found(tmp_path: Path) -> None:
    members = [(n.replace("demo-1.0", "Demo-1.0.0"), d) for n, d in GOOD_WHEEL.items()]
    path = make_zip(tmp_path / WHEEL_NAME, members)
    assert read_metadata(path, parse_dist_filename(WHEEL_NAME), LIMITS) == METADATA


# --- sdists ----------------------------------------------------------------------------------

SDIST_NAME = "demo-1.0.tar.gz"
PKG_INFO = b"Metadata-Version: 1.2\nName: demo\nVersion: 1.0\n"


def tar_member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def make_tar_gz(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def make_sdist(tmp_path: Path, extra: Sequence[tuple[tarfile.TarInfo, bytes]] = ()) -> Path:
    members = [
        tar_member("demo-1.0/PKG-INFO", PKG_INFO),
        tar_member("demo-1.0/setup.py", b"print()\n"),
        *extra,
    ]
    return make_tar_gz(tmp_path / SDIST_NAME, members)


def test_good_built_sdist(tmp_path: Path) -> None:
    assert read_metadata(make_sdist(tmp_path), parse_dist_filename(SDIST_NAME), LIMITS) == PKG_INFO


def test_sdist_with_normalised_top_dir(tmp_path: Path) -> None:
    path = make_tar_gz(
        tmp_path / "demo_pkg-1.0.tar.gz", [tar_member("Demo.Pkg-1.0/PKG-INFO", PKG_INFO)]
    )
    assert read_metadata(path, parse_dist_filename(path.name), LIMITS) == PKG_INFO


def test_sdist_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / SDIST_NAME
    path.write_bytes(b"not gzip" * 100)
    assert "sdist is not a valid .tar.gz file" in refusal(path)


def test_sdist_truncated(tmp_path: Path) -> None:
    real = (DATA / "toml-0.10.2.tar.gz").read_bytes()
    path = tmp_path / "toml-0.10.2.tar.gz"
    path.write_bytes(real[: len(real) // 2])
    assert "sdist is not a valid .tar.gz file" in refusal(path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("demo-1.0/../../evil", "sdist member 'demo-1.0/../../evil' has a '..' path component"),
        ("/etc/passwd", "sdist member '/etc/passwd' has an absolute path"),
    ],
)
def test_sdist_unsafe_names(tmp_path: Path, name: str, message: str) -> None:
    assert message in refusal(make_sdist(tmp_path, [tar_member(name, b"x")]))


def test_sdist_symlink_pkg_info(tmp_path: Path) -> None:
    link, _ = tar_member("demo-1.0/PKG-INFO", kind=tarfile.SYMTYPE)
    link.linkname = "/etc/passwd"
    path = make_tar_gz(tmp_path / SDIST_NAME, [(link, b"")])
    assert "sdist member 'demo-1.0/PKG-INFO' is a link or special file" in refusal(path)


def test_sdist_hardlink_pkg_info(tmp_path: Path) -> None:
    link, _ = tar_member("demo-1.0/PKG-INFO", kind=tarfile.LNKTYPE)
    link.linkname = "demo-1.0/setup.py"
    path = make_tar_gz(tmp_path / SDIST_NAME, [tar_member("demo-1.0/setup.py", b"x"), (link, b"")])
    assert "sdist member 'demo-1.0/PKG-INFO' is a link or special file" in refusal(path)


def test_sdist_device(tmp_path: Path) -> None:
    path = make_sdist(tmp_path, [tar_member("demo-1.0/dev", kind=tarfile.CHRTYPE)])
    assert "sdist member 'demo-1.0/dev' is a character device" in refusal(path)


def test_sdist_duplicate_pkg_info(tmp_path: Path) -> None:
    path = make_sdist(tmp_path, [tar_member("demo-1.0/PKG-INFO", PKG_INFO)])
    assert "sdist has more than one 'demo-1.0/PKG-INFO'" in refusal(path)


def test_sdist_missing_pkg_info(tmp_path: Path) -> None:
    path = make_tar_gz(tmp_path / SDIST_NAME, [tar_member("demo-1.0/setup.py", b"x")])
    assert "sdist has no demo-1.0/PKG-INFO file" in refusal(path)


def test_sdist_two_top_dirs(tmp_path: Path) -> None:
    path = make_sdist(tmp_path, [tar_member("other-1.0/PKG-INFO", PKG_INFO)])
    assert (
        "sdist must hold exactly one top-level directory named 'demo-1.0';"
        " found 'demo-1.0', 'other-1.0'"
    ) in refusal(path)


def test_sdist_top_dir_of_another_project(tmp_path: Path) -> None:
    path = make_tar_gz(tmp_path / SDIST_NAME, [tar_member("other-1.0/PKG-INFO", PKG_INFO)])
    assert "sdist's top-level directory 'other-1.0' does not match" in refusal(path)


def test_sdist_too_many_members(tmp_path: Path) -> None:
    path = make_sdist(tmp_path, [tar_member(f"demo-1.0/{i}.py") for i in range(5)])
    assert "sdist has more than 4 members" in refusal(path, limits=ArchiveLimits(max_members=4))


def test_sdist_declared_total(tmp_path: Path) -> None:
    path = make_sdist(tmp_path, [tar_member("demo-1.0/big.py", b"w" * 3000)])
    assert "sdist members declare more than 2000 bytes uncompressed in total" in refusal(
        path, limits=ArchiveLimits(max_total_bytes=2000)
    )


def test_sdist_pkg_info_over_limit(tmp_path: Path) -> None:
    message = refusal(make_sdist(tmp_path), limits=ArchiveLimits(max_metadata_bytes=10))
    assert f"sdist member 'demo-1.0/PKG-INFO' declares {len(PKG_INFO)} bytes" in message


def test_gzip_bomb(tmp_path: Path) -> None:
    # 8 MiB of zeros inside the tar compresses ~1000:1; the stream is cut at 200:1.
    path = make_sdist(tmp_path, [tar_member("demo-1.0/zeros.bin", b"\0" * (8 * 1024 * 1024))])
    assert path.stat().st_size < 40_000
    message = refusal(path)
    assert "sdist decompresses to more than" in message
    assert "possible decompression bomb" in message


def test_gzip_stream_that_is_not_a_tar(tmp_path: Path) -> None:
    path = tmp_path / SDIST_NAME
    path.write_bytes(gzip.compress(b"plain text, not a tar" * 100))
    assert "sdist is not a valid .tar.gz file" in refusal(path)


def test_zip_sdist(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "demo-1.0.zip", [("demo-1.0/PKG-INFO", PKG_INFO), ("demo-1.0/a.py", b"")]
    )
    assert read_metadata(path, parse_dist_filename(path.name), LIMITS) == PKG_INFO


def test_zip_sdist_hazards(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "demo-1.0.zip", [("demo-1.0/PKG-INFO", PKG_INFO), ("../x", b"")])
    assert "sdist member '../x' has a '..' path component" in refusal(path)
    missing = make_zip(tmp_path / "demo-1.0.zip", [("demo-1.0/setup.py", b"")])
    assert "sdist has no demo-1.0/PKG-INFO file" in refusal(missing)


def test_real_sdist_copied_under_its_own_name(tmp_path: Path) -> None:
    path = tmp_path / "idna-3.7.tar.gz"
    shutil.copy(DATA / "idna-3.7.tar.gz", path)
    assert b"Name: idna" in read_metadata(path, parse_dist_filename(path.name), LIMITS)
