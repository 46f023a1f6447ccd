"""Read the core metadata file out of an uploaded wheel or sdist, without trusting it.

Nothing is extracted to disk. Every member is checked (names, types, declared sizes,
compression) before the one metadata file is read, and that read is capped by what is
actually decompressed, never by what the archive declares. Each refusal raises
`UnsafeArchive` naming the member and the problem.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from packhouse.errors import UnsafeArchive
from packhouse.formats.pypi.entrypoints import check_entry_points
from packhouse.formats.pypi.filenames import DistFilename
from packhouse.formats.tartree import TreeCheck
from packhouse.formats.zipscan import scan_zip

__all__ = [
    "ArchiveLimits",
    "read_metadata",
    "read_sdist_metadata",
    "read_wheel_metadata",
]

_MIB = 1024 * 1024
_CHUNK = 64 * 1024
_TAR_BUFFER = 64 * 1024
# Below this uncompressed size a member's compression ratio is not checked: small, highly
# repetitive files (license texts, empty __init__.py) compress very well and are harmless.
_RATIO_FLOOR = _MIB
# Below this total uncompressed size the whole archive's ratio is not checked either.
_TOTAL_RATIO_FLOOR = 8 * _MIB
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# What tarfile raises on damaged or hostile headers besides TarError (a bad GNU sparse map
# gives ValueError or IndexError, a bad number field ValueError, a huge one OverflowError).
_TAR_ERRORS = (
    tarfile.TarError,
    OSError,
    EOFError,
    zlib.error,
    ValueError,
    IndexError,
    OverflowError,
    struct.error,
)


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Limits on an archive's contents; the defaults suit real wheels and sdists."""

    max_members: int = 100_000
    max_member_bytes: int = 512 * _MIB
    max_total_bytes: int = 2048 * _MIB
    max_ratio: int = 200  # uncompressed / compressed, per member above 1 MiB
    max_total_ratio: int = 100  # all members' uncompressed / the archive's size, above 8 MiB
    max_metadata_bytes: int = 10 * _MIB


# ---------------------------------------------------------------------------------------------
# Shared checks


# Anything that may make a name unsafe; most names have none of it and pass one search.
_SUSPECT = re.compile(r"[\x00-\x1f\\\ud800-\udfff:]|\.\.|^/")


def _check_member_name(kind: str, name: str) -> None:
    """Refuse member names that point anywhere but inside the archive."""
    if _SUSPECT.search(name) is None:
        return
    if "\x00" in name:
        raise UnsafeArchive(f"{kind} member {name!r} has a NUL byte in its name")
    if any(ord(c) < 0x20 for c in name):
        raise UnsafeArchive(f"{kind} member {name!r} has a control character in its name")
    if "\\" in name:
        raise UnsafeArchive(f"{kind} member {name!r} has a backslash in its name")
    if name.startswith("/") or (len(name) >= 2 and name[1] == ":" and name[0].isalpha()):
        raise UnsafeArchive(f"{kind} member {name!r} has an absolute path")
    if ".." in name.split("/"):
        raise UnsafeArchive(f"{kind} member {name!r} has a '..' path component")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeArchive(f"{kind} member {name!r} has a name that is not UTF-8") from None


def _check_sizes(kind: str, name: str, size: int, total: int, limits: ArchiveLimits) -> None:
    if size < 0:
        raise UnsafeArchive(f"{kind} member {name!r} declares a negative size ({size})")
    if size > limits.max_member_bytes:
        raise UnsafeArchive(
            f"{kind} member {name!r} declares {size} bytes uncompressed;"
            f" the limit is {limits.max_member_bytes}"
        )
    if total > limits.max_total_bytes:
        raise UnsafeArchive(
            f"{kind} members declare more than {limits.max_total_bytes} bytes uncompressed"
            " in total; the archive is refused as a possible decompression bomb"
        )


def _read_capped(stream: _Readable, kind: str, name: str, limit: int) -> bytes:
    """Read a whole member, refusing it once more than `limit` bytes have come out."""
    parts: list[bytes] = []
    seen = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return b"".join(parts)
        seen += len(chunk)
        if seen > limit:
            raise UnsafeArchive(
                f"{kind} member {name!r} decompresses to more than {limit} bytes;"
                " metadata files are never that large"
            )
        parts.append(chunk)


def _split_name_version(dirname: str, suffix: str) -> tuple[str, Version] | None:
    """`Foo_Bar-1.0.dist-info` -> ('foo-bar', Version('1.0')); None if it does not parse."""
    stem = dirname[: -len(suffix)] if suffix else dirname
    name, dash, version = stem.rpartition("-")
    if not dash or not name:
        return None
    try:
        return canonicalize_name(name), Version(version)
    except InvalidVersion:
        return None


def _matches(dist: DistFilename, dirname: str, suffix: str) -> bool:
    return _split_name_version(dirname, suffix) == (dist.name, dist.version)


# ---------------------------------------------------------------------------------------------
# Zip (wheels and .zip sdists)


@contextlib.contextmanager
def _open_zip(path: Path, kind: str, limits: ArchiveLimits) -> Iterator[zipfile.ZipFile]:
    """The zip at `path`, after `scan_zip` found its local headers and central directory in
    agreement (so every reader sees the same members)."""
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        scan_zip(fh, size, kind, methods=_ZIP_METHODS, max_members=limits.max_members)
        try:
            archive = zipfile.ZipFile(fh)
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            EOFError,
            ValueError,
            NotImplementedError,
            OSError,
        ) as error:
            raise UnsafeArchive(
                f"{kind} is not a valid zip file ({error}); rebuild it and upload it again"
            ) from error
        with archive:
            yield archive


def _check_zip_members(
    archive: zipfile.ZipFile, kind: str, limits: ArchiveLimits, archive_size: int
) -> dict[str, zipfile.ZipInfo]:
    """Check every member's name, type, compression and declared sizes; return them by name."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise UnsafeArchive(
            f"{kind} has {len(infos)} members; at most {limits.max_members} are allowed"
        )
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        # zipfile cuts names at a NUL byte; orig_filename keeps what the archive says.
        name = info.orig_filename
        _check_member_name(kind, name)
        if name in members:
            raise UnsafeArchive(f"{kind} has more than one member named {name!r}")
        if info.flag_bits & 0x1:
            raise UnsafeArchive(f"{kind} member {name!r} is encrypted")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeArchive(f"{kind} member {name!r} is a symbolic link")
        total += info.file_size
        _check_sizes(kind, name, info.file_size, total, limits)
        if info.file_size > _RATIO_FLOOR and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise UnsafeArchive(
                f"{kind} member {name!r} declares a compression ratio above"
                f" {limits.max_ratio}:1 ({info.file_size} bytes from {info.compress_size});"
                " the archive is refused as a possible decompression bomb"
            )
        members[name] = info
    if total > _TOTAL_RATIO_FLOOR and total > limits.max_total_ratio * max(archive_size, 1):
        raise UnsafeArchive(
            f"{kind} members declare {total} bytes uncompressed in total from a"
            f" {archive_size}-byte archive, a ratio above {limits.max_total_ratio}:1;"
            " the archive is refused as a possible decompression bomb"
        )
    return members


def _read_zip_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, kind: str, limits: ArchiveLimits
) -> bytes:
    name = info.orig_filename
    if info.is_dir():
        raise UnsafeArchive(f"{kind} member {name!r} is a directory, not a file")
    if info.file_size > limits.max_metadata_bytes:
        raise UnsafeArchive(
            f"{kind} member {name!r} declares {info.file_size} bytes;"
            f" metadata files are limited to {limits.max_metadata_bytes}"
        )
    try:
        with archive.open(info) as stream:
            return _read_capped(stream, kind, name, limits.max_metadata_bytes)
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, NotImplementedError) as error:
        raise UnsafeArchive(f"{kind} member {name!r} cannot be read: {error}") from error


def _top_level_dirs(names: Iterable[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in names if "/" in name}


def read_wheel_metadata(path: Path, dist: DistFilename, limits: ArchiveLimits) -> bytes:
    """Return the raw bytes of `{name}-{version}.dist-info/METADATA` from a wheel on disk."""
    kind = "wheel"
    with _open_zip(path, kind, limits) as archive:
        members = _check_zip_members(archive, kind, limits, path.stat().st_size)
        dist_infos = sorted(d for d in _top_level_dirs(members) if d.endswith(".dist-info"))
        if not dist_infos:
            raise UnsafeArchive("wheel has no top-level '.dist-info' directory")
        if len(dist_infos) > 1:
            raise UnsafeArchive(
                f"wheel has {len(dist_infos)} top-level '.dist-info' directories"
                f" ({', '.join(repr(d) for d in dist_infos)}); expected exactly one"
            )
        dist_info = dist_infos[0]
        if not _matches(dist, dist_info, ".dist-info"):
            raise UnsafeArchive(
                f"wheel's directory {dist_info!r} does not match the filename's project"
                f" {dist.name!r} version {str(dist.version)!r}"
            )
        missing = [f for f in ("METADATA", "WHEEL", "RECORD") if f"{dist_info}/{f}" not in members]
        if missing:
            raise UnsafeArchive(
                f"wheel is missing {', '.join(f'{dist_info}/{f}' for f in missing)};"
                " rebuild it with a current build backend"
            )
        entry_points = members.get(f"{dist_info}/entry_points.txt")
        if entry_points is not None:
            check_entry_points(_read_zip_member(archive, entry_points, kind, limits))
        return _read_zip_member(archive, members[f"{dist_info}/METADATA"], kind, limits)


# ---------------------------------------------------------------------------------------------
# Sdists


def _pick_top(dist: DistFilename, tops: set[str]) -> str:
    if len(tops) != 1:
        listed = ", ".join(repr(t) for t in sorted(tops)) or "none"
        raise UnsafeArchive(
            f"sdist must hold exactly one top-level directory named"
            f" '{dist.name}-{dist.version}'; found {listed}"
        )
    (top,) = tops
    if not _matches(dist, top, ""):
        raise UnsafeArchive(
            f"sdist's top-level directory {top!r} does not match the filename's project"
            f" {dist.name!r} version {str(dist.version)!r}"
        )
    return top


def _read_zip_sdist(path: Path, dist: DistFilename, limits: ArchiveLimits) -> bytes:
    kind = "sdist"
    with _open_zip(path, kind, limits) as archive:
        members = _check_zip_members(archive, kind, limits, path.stat().st_size)
        tops = {name.split("/", 1)[0] for name in members}
        top = _pick_top(dist, tops)
        info = members.get(f"{top}/PKG-INFO")
        if info is None:
            raise UnsafeArchive(f"sdist has no {top}/PKG-INFO file")
        return _read_zip_member(archive, info, kind, limits)


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _CappedReader:
    """A read-only stream that refuses to yield more than `limit` bytes: the gzip-bomb fuse."""

    def __init__(self, raw: _Readable, limit: int) -> None:
        self._raw = raw
        self._limit = limit
        self._seen = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._seen += len(data)
        if self._seen > self._limit:
            raise UnsafeArchive(
                f"sdist decompresses to more than {self._limit} bytes;"
                " the archive is refused as a possible decompression bomb"
            )
        return data


def _tar_limit(path: Path, limits: ArchiveLimits) -> int:
    """How many decompressed bytes a tar.gz may produce: its members' limit plus room for
    headers, and at most `max_ratio` times its compressed size."""
    headers = (limits.max_members + 2) * 1024 + 20 * 512
    by_ratio = max(path.stat().st_size * limits.max_ratio, _RATIO_FLOOR)
    return min(limits.max_total_bytes + headers, by_ratio)


def _read_tar_sdist(path: Path, dist: DistFilename, limits: ArchiveLimits) -> bytes:
    kind = "sdist"
    found: dict[str, bytes] = {}
    top: str | None = None
    count = 0
    total = 0
    # Links only where they stay inside (PEP 721, as pip and uv unpack sdists): hatchling
    # keeps a project's own symbolic links; no devices, FIFOs or sparse files.
    tree = TreeCheck("sdist", "sdist")
    with path.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
        capped = _CappedReader(unzipped, _tar_limit(path, limits))
        try:
            # "r|": a forward-only stream; members are checked as they come and only
            # PKG-INFO's bytes are kept.
            # A larger buffer than tarfile's 10 KiB: skipping data is reading it, in buffers.
            with tarfile.open(  # type: ignore[call-overload]
                fileobj=capped, mode="r|", bufsize=_TAR_BUFFER
            ) as archive:
                for member in archive:
                    count += 1
                    if count > limits.max_members:
                        raise UnsafeArchive(f"sdist has more than {limits.max_members} members")
                    name = member.name
                    _check_member_name(kind, name)
                    tree.add(member)
                    total += member.size
                    _check_sizes(kind, name, member.size, total, limits)
                    first = name.split("/", 1)[0]
                    if top is None:
                        top = first
                    elif first != top:
                        _pick_top(dist, {top, first})
                    if name.split("/")[1:] != ["PKG-INFO"]:
                        continue
                    if name in found:
                        raise UnsafeArchive(f"sdist has more than one {name!r}")
                    if not member.isfile():
                        raise UnsafeArchive(
                            f"sdist member {name!r} is a link or special file, not a regular file"
                        )
                    if member.size > limits.max_metadata_bytes:
                        raise UnsafeArchive(
                            f"sdist member {name!r} declares {member.size} bytes;"
                            f" metadata files are limited to {limits.max_metadata_bytes}"
                        )
                    stream = archive.extractfile(member)
                    assert stream is not None  # a regular file always has a stream
                    found[name] = _read_capped(stream, kind, name, limits.max_metadata_bytes)
        except UnsafeArchive:
            raise
        except _TAR_ERRORS as error:
            raise UnsafeArchive(
                f"sdist is not a valid .tar.gz file ({error}); rebuild and upload it again"
            ) from error
    tree.finish()
    top_dir = _pick_top(dist, {top} if top is not None else set())
    data = found.get(f"{top_dir}/PKG-INFO")
    if data is None:
        raise UnsafeArchive(f"sdist has no {top_dir}/PKG-INFO file")
    return data


def read_sdist_metadata(path: Path, dist: DistFilename, limits: ArchiveLimits) -> bytes:
    """Return the raw bytes of `{top}/PKG-INFO` from a `.tar.gz` or `.zip` sdist on disk."""
    if dist.filename.endswith(".zip"):
        return _read_zip_sdist(path, dist, limits)
    return _read_tar_sdist(path, dist, limits)


def read_metadata(path: Path, dist: DistFilename, limits: ArchiveLimits) -> bytes:
    """Return the raw core metadata file of the distribution at `path`."""
    if dist.kind == "wheel":
        return read_wheel_metadata(path, dist, limits)
    return read_sdist_metadata(path, dist, limits)
