"""Sdists hold files, directories and links that stay inside (docs/pypi.md); no devices,
FIFOs or sparse files; a damaged GNU sparse header is a clear refusal, not a crash. Archives
are built here, the sparse ones header by header."""

from __future__ import annotations

import gzip
import stat
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from packhouse.errors import UnsafeArchive
from packhouse.formats.pypi.archives import ArchiveLimits, read_metadata
from packhouse.formats.pypi.filenames import parse_dist_filename

SDIST = "demo-1.0.tar.gz"
PKG_INFO = b"Metadata-Version: 1.2\nName: demo\nVersion: 1.0\n"
BLOCK = 512


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
    """One tar member (header and data blocks) in the GNU format."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    padding = b"\0" * (-len(data) % BLOCK) if info.size else b""
    return info.tobuf(tarfile.GNU_FORMAT) + (data + padding if info.size else b"")


def pax_member(name: str, headers: dict[str, str], data: bytes = b"") -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.pax_headers = headers
    return info.tobuf(tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % BLOCK)


def checksum(header: bytearray) -> bytes:
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def gnu_sparse(name: str, *, extended: bool, bad_map: bool = False) -> bytes:
    """A GNU 'S' header: its sparse map at bytes 386-481, 'isextended' at 482, real size at
    483. With `extended`, the map says it continues in the next block."""
    header = bytearray(member(name)[:BLOCK])
    header[156:157] = tarfile.GNUTYPE_SPARSE
    header[386:410] = b"%011o\0%011o\0" % (0, 4)  # one chunk: 4 bytes at offset 0
    if bad_map:
        header[398:410] = b"\xff" * 12
    header[482] = 1 if extended else 0
    header[483:495] = b"%011o\0" % 4
    header[124:136] = b"%011o\0" % 4  # the stored size
    return checksum(header) + b"data" + b"\0" * (BLOCK - 4)


def sdist(*parts: bytes, end: bool = True) -> bytes:
    body = member("demo-1.0/PKG-INFO", PKG_INFO) + b"".join(parts)
    return gzip.compress(body + (b"\0" * 2 * BLOCK if end else b""))


def refusal(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / SDIST
    path.write_bytes(data)
    with pytest.raises(UnsafeArchive) as caught:
        read_metadata(path, parse_dist_filename(SDIST), ArchiveLimits())
    return str(caught.value)


def test_the_builders_make_an_sdist_that_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / SDIST
    path.write_bytes(sdist(member("demo-1.0/setup.py", b"print()\n")))
    assert read_metadata(path, parse_dist_filename(SDIST), ArchiveLimits()) == PKG_INFO


HAZARDS: dict[str, tuple[Callable[[], bytes], str]] = {
    "symlink to /etc/passwd": (
        lambda: sdist(member("demo-1.0/passwd", kind=tarfile.SYMTYPE, link="/etc/passwd")),
        "'demo-1.0/passwd' is a symbolic link to the absolute path '/etc/passwd', outside the"
        " sdist",
    ),
    "symlink out with ..": (
        lambda: sdist(member("demo-1.0/up", kind=tarfile.SYMTYPE, link="../../etc")),
        "'demo-1.0/up' is a symbolic link to '../../etc', which leaves the sdist",
    ),
    "symlink out through another symlink": (
        lambda: sdist(
            member("demo-1.0/t", kind=tarfile.SYMTYPE, link="s/../../x"),
            member("demo-1.0/s", kind=tarfile.SYMTYPE, link=".."),
        ),
        "'demo-1.0/t' is a symbolic link to 's/../../x', which leaves the sdist",
    ),
    "symlink to /etc replaced after a file is written through it": (
        lambda: sdist(
            member("demo-1.0/b", kind=tarfile.SYMTYPE, link="/etc"),
            member("demo-1.0/b/passwd", b"root::0:0::/:/bin/sh\n"),
            member("demo-1.0/b", kind=tarfile.SYMTYPE, link="PKG-INFO"),
        ),
        "'demo-1.0/b' appears twice, once as a link",
    ),
    "hardlink to ../../etc/passwd": (
        lambda: sdist(member("demo-1.0/passwd", kind=tarfile.LNKTYPE, link="../../etc/passwd")),
        "'demo-1.0/passwd' is a hard link to '../../etc/passwd', outside the sdist",
    ),
    "hardlink to a name not in the archive": (
        lambda: sdist(member("demo-1.0/copy", kind=tarfile.LNKTYPE, link="demo-1.0/missing")),
        "'demo-1.0/copy' is a hard link to 'demo-1.0/missing', which is not a regular file"
        " earlier in the archive",
    ),
    "PKG-INFO as a symlink": (
        lambda: gzip.compress(
            member("demo-1.0/PKG-INFO", kind=tarfile.SYMTYPE, link="/etc/passwd") + b"\0" * 1024
        ),
        "'demo-1.0/PKG-INFO' is a link or special file, not a regular file",
    ),
    "GNU sparse member": (
        lambda: sdist(gnu_sparse("demo-1.0/holes.bin", extended=False)),
        "'demo-1.0/holes.bin' is a GNU sparse file",
    ),
    "GNU sparse member whose map continues past the end (IndexError before)": (
        lambda: sdist(gnu_sparse("demo-1.0/holes.bin", extended=True)[:BLOCK], end=False),
        "sdist is not a valid .tar.gz file",
    ),
    "GNU sparse member with a bad map": (
        lambda: sdist(gnu_sparse("demo-1.0/holes.bin", extended=False, bad_map=True)),
        "'demo-1.0/holes.bin' is a GNU sparse file",
    ),
    "PAX 0.1 sparse map that is not numbers (ValueError before)": (
        lambda: sdist(
            pax_member(
                "demo-1.0/holes.bin",
                {"GNU.sparse.map": "0,x", "GNU.sparse.size": "4", "GNU.sparse.name": "h"},
                b"data",
            )
        ),
        "sdist is not a valid .tar.gz file",
    ),
    "PAX 1.0 sparse map that is not numbers (ValueError before)": (
        lambda: sdist(
            pax_member(
                "demo-1.0/holes.bin",
                {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "4"},
                b"one\nx\n" + b"\0" * 506 + b"data",
            )
        ),
        "sdist is not a valid .tar.gz file",
    ),
    "PAX 0.0 sparse member": (
        lambda: sdist(
            pax_member(
                "demo-1.0/holes.bin",
                {"GNU.sparse.offset": "0", "GNU.sparse.numbytes": "4", "GNU.sparse.size": "4"},
                b"data",
            )
        ),
        "'demo-1.0/holes.bin' is a GNU sparse file",
    ),
    "character device": (
        lambda: sdist(member("demo-1.0/tty", kind=tarfile.CHRTYPE)),
        "'demo-1.0/tty' is a character device",
    ),
    "block device": (
        lambda: sdist(member("demo-1.0/sda", kind=tarfile.BLKTYPE)),
        "'demo-1.0/sda' is a block device",
    ),
    "FIFO": (
        lambda: sdist(member("demo-1.0/pipe", kind=tarfile.FIFOTYPE)),
        "'demo-1.0/pipe' is a FIFO",
    ),
    "unknown member type": (
        lambda: sdist(member("demo-1.0/odd", kind=b"Z")),
        "'demo-1.0/odd' is a member of the unknown tar type",
    ),
    "name that is not UTF-8": (
        lambda: sdist(member("demo-1.0/caf\udce9.py", b"x")),
        "has a name that is not UTF-8",
    ),
    "member with a negative size": (
        lambda: sdist(_bad_size_header()),
        "sdist member 'demo-1.0/a.py' declares a negative size (-1)",
    ),
}


def _bad_size_header() -> bytes:
    header = bytearray(member("demo-1.0/a.py", b"x")[:BLOCK])
    header[124:136] = b"\xff" * 12  # base-256 size: negative
    return checksum(header) + b"x" + b"\0" * (BLOCK - 1)


@pytest.mark.parametrize("case", sorted(HAZARDS))
def test_hazard_is_refused(tmp_path: Path, case: str) -> None:
    make, message = HAZARDS[case]
    assert message in refusal(tmp_path, make())


def test_links_that_stay_inside_are_accepted(tmp_path: Path) -> None:
    """PEP 721's rule, as pip and uv unpack sdists; hatchling keeps a project's own links."""
    path = tmp_path / SDIST
    path.write_bytes(
        sdist(
            member("demo-1.0/README", kind=tarfile.SYMTYPE, link="PKG-INFO"),
            member("demo-1.0/docs/index.txt", kind=tarfile.SYMTYPE, link="../README"),
            member("demo-1.0/copy", kind=tarfile.LNKTYPE, link="demo-1.0/PKG-INFO"),
        )
    )
    assert read_metadata(path, parse_dist_filename(SDIST), ArchiveLimits()) == PKG_INFO


def test_a_zip_sdist_holds_no_links_either(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("demo-1.0/PKG-INFO", PKG_INFO)
        link = zipfile.ZipInfo("demo-1.0/passwd")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(UnsafeArchive, match=r"'demo-1\.0/passwd' is a symbolic link"):
        read_metadata(path, parse_dist_filename(path.name), ArchiveLimits())


def test_a_hatchling_sdist_with_the_project_s_own_symlink_is_accepted(tmp_path: Path) -> None:
    """hatchling keeps symbolic links in sdists (setuptools follows them): a real build."""
    root = tmp_path / "proj"
    (root / "src" / "demo_x").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "demo-x"\nversion = "1.0"\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    )
    (root / "src" / "demo_x" / "__init__.py").write_text("VALUE = 1\n")
    (root / "src" / "demo_x" / "alias.py").symlink_to("__init__.py")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "sdist"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    (path,) = (root / "dist").glob("*.tar.gz")
    with tarfile.open(path) as archive:
        assert archive.getmember("demo_x-1.0/src/demo_x/alias.py").issym()
    assert b"Name: demo-x" in read_metadata(path, parse_dist_filename(path.name), ArchiveLimits())
