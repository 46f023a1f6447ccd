"""Property test with an oracle: random trees of files, directories, symbolic and hard links,
devices and FIFOs, as sdists and as .tar.bz2 packages. Whatever Packhouse accepts, Python's
tarfile unpacks with the "data" filter (PEP 706, the rule PEP 721 gives installers for
sdists) without refusing a member; and nothing but a domain error ever escapes."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import os
import tarfile
import tempfile
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packhouse.errors import PackhouseError
from packhouse.formats.conda.archive import read_package
from packhouse.formats.pypi.archives import ArchiveLimits, read_metadata
from packhouse.formats.pypi.filenames import parse_dist_filename

CHECKS = settings(
    max_examples=int(os.environ.get("PH_FUZZ_SLOW", 150)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PKG_INFO = b"Metadata-Version: 1.2\nName: demo\nVersion: 1.0\n"
INDEX = orjson.dumps({"name": "demo", "version": "1.0", "build": "0", "build_number": 0})

part = st.sampled_from(["a", "b", "c", "..", ".", "lib", ""])
relative = st.lists(part, min_size=1, max_size=4).map("/".join)
target = st.one_of(relative, relative.map(lambda p: "/" + p), st.just(""))
kinds = st.sampled_from(["file", "dir", "sym", "hard", "chr", "fifo"])
entries = st.lists(st.tuples(kinds, relative, target), max_size=8)


def tar_bytes(prefix: str, first: tuple[str, bytes], items: list[tuple[str, str, str]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(first[0])
        info.size = len(first[1])
        archive.addfile(info, io.BytesIO(first[1]))
        for kind, name, link in items:
            info = tarfile.TarInfo(f"{prefix}{name}")
            info.type = {
                "file": tarfile.REGTYPE,
                "dir": tarfile.DIRTYPE,
                "sym": tarfile.SYMTYPE,
                "hard": tarfile.LNKTYPE,
                "chr": tarfile.CHRTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            info.linkname = f"{prefix}{link}" if kind == "hard" and link else link
            data = b"x" if kind == "file" else b""
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def unpacks_with_the_data_filter(tar: bytes) -> None:
    """Extract member by member; a FilterError (the filter refusing a member) fails the
    test, an OSError of the file system (a file where a directory was, ...) does not."""
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        for member in archive.getmembers():
            try:
                archive.extract(member, tmp, filter="data")
            except tarfile.FilterError as error:
                raise AssertionError(f"accepted, but the data filter refuses: {error}") from error
            except (OSError, tarfile.ExtractError, KeyError):
                continue
        root = Path(tmp).resolve()
        for path in Path(tmp).rglob("*"):
            if path.is_symlink():
                resolved = Path(os.path.realpath(path))
                assert resolved == root or root in resolved.parents, (path, resolved)


@CHECKS
@given(entries)
def test_what_an_sdist_check_accepts_unpacks_safely(items: list[tuple[str, str, str]]) -> None:
    tar = tar_bytes("demo-1.0/", ("demo-1.0/PKG-INFO", PKG_INFO), items)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo-1.0.tar.gz"
        path.write_bytes(gzip.compress(tar))
        try:
            read_metadata(path, parse_dist_filename(path.name), ArchiveLimits())
        except PackhouseError:
            return
    unpacks_with_the_data_filter(tar)


@CHECKS
@given(entries)
def test_what_a_conda_check_accepts_unpacks_safely(items: list[tuple[str, str, str]]) -> None:
    tar = tar_bytes("", ("info/index.json", INDEX), items)
    with contextlib.suppress(PackhouseError):
        read_package(bz2.compress(tar, 1), "demo-1.0-0.tar.bz2")
        unpacks_with_the_data_filter(tar)
