"""Read the `info/` metadata of a conda package (`.conda` or `.tar.bz2`), within limits.

Only `info/` is read: index.json, about.json, run_exports.json, paths.json, has_prefix (for
old-style packages without paths.json) and the icon when index.json names one. Every
decompressor is capped, so no archive can exhaust memory or run for ever:

- `.conda` is a zip that must hold exactly `metadata.json`, `info-<stem>.tar.zst` and
  `pkg-<stem>.tar.zst`, all stored (not deflated), with nothing before, between or after
  them (`formats/zipscan.py`); both tarballs are streamed through `zstandard` with
  `max_window_size` and a cap on decompressed bytes, and every member of both is checked;
- `.tar.bz2` is streamed through `bz2` with a cap on decompressed bytes.

The tar members are walked in stream mode, as `conda_package_streaming` reads them, and
checked by `formats/tartree.py` (no absolute or `..` names, no links in `info/`, symbolic
links elsewhere only within the package, hard links only to earlier files, no devices, FIFOs
or sparse files).
md5, sha256 and size are computed here from the file's bytes; any in index.json are ignored.
"""

from __future__ import annotations

import bz2
import fnmatch
import hashlib
import io
import os
import struct
import tarfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

import orjson
import zstandard

from packhouse.errors import InvalidUpload, TooLarge, UnsafeArchive
from packhouse.formats.conda.names import (
    PackageFilename,
    build_problems,
    name_problems,
    parse_filename,
    subdir_problems,
    version_problems,
)
from packhouse.formats.tartree import TreeCheck
from packhouse.formats.zipscan import scan_zip

__all__ = [
    "Digests",
    "Limits",
    "PackageContents",
    "PrefixFile",
    "compute_digests",
    "read_package",
    "read_tar_bz2_members",
]

Source = str | os.PathLike[str] | bytes

_KiB = 1024
_MiB = 1024 * _KiB
_GiB = 1024 * _MiB
_CHUNK = 1 * _MiB
_TAR_BUFFER = 64 * _KiB

INDEX_JSON = "info/index.json"
ABOUT_JSON = "info/about.json"
RUN_EXPORTS_JSON = "info/run_exports.json"
PATHS_JSON = "info/paths.json"
HAS_PREFIX = "info/has_prefix"
ICON_PNG = "info/icon.png"
_JSON_MEMBERS = (INDEX_JSON, ABOUT_JSON, RUN_EXPORTS_JSON, PATHS_JSON)
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # deflated: refused, with the reason


@dataclass(frozen=True)
class Limits:
    """Caps applied while reading a package; the defaults fit every package on conda-forge."""

    max_members: int = 200_000  # tar members walked (all of a .tar.bz2, info/ of a .conda)
    max_member_size: int = 64 * _MiB  # one info/ member that is read
    max_info_size: int = 256 * _MiB  # all info/ members together (decompressed)
    max_zstd_window: int = 128 * _MiB  # zstd's own default decoder limit (window log 27)
    max_bz2_decompressed: int = 8 * _GiB  # a whole .tar.bz2, decompressed
    max_pkg_decompressed: int = 8 * _GiB  # a .conda's pkg-*.tar.zst, decompressed
    max_metadata_json: int = 64 * _KiB  # the .conda zip's metadata.json


@dataclass(frozen=True)
class Digests:
    md5: str
    sha256: str
    size: int


@dataclass(frozen=True)
class PrefixFile:
    """A file whose content holds the build prefix, rewritten at install time."""

    path: str
    placeholder: str
    file_mode: str  # "text" or "binary"


@dataclass(frozen=True)
class PackageContents:
    """What Packhouse keeps from one package file."""

    filename: str
    index: dict[str, Any]
    about: dict[str, Any]
    run_exports: dict[str, Any]
    digests: Digests
    has_paths_json: bool
    prefix_files: tuple[PrefixFile, ...] = ()
    # conda-index's "post_install" flags, from paths.json (all False without it).
    post_install: Mapping[str, bool] = field(default_factory=dict)
    icon: bytes | None = None


def compute_digests(source: Source) -> Digests:
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    if isinstance(source, bytes):
        md5.update(source)
        sha256.update(source)
        return Digests(md5.hexdigest(), sha256.hexdigest(), len(source))
    size = 0
    with open(source, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return Digests(md5.hexdigest(), sha256.hexdigest(), size)


class _CappedReader(io.RawIOBase):
    """A read-only stream that raises once more than `cap` bytes have been read."""

    def __init__(self, raw: IO[bytes], cap: int, on_exceed: Callable[[], Exception]) -> None:
        self._raw = raw
        self._left = cap
        self._on_exceed = on_exceed

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._left + 1
        data = self._raw.read(min(size, self._left + 1))
        self._left -= len(data)
        if self._left < 0:
            raise self._on_exceed()
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# What tarfile raises on damaged or hostile headers besides TarError (a bad GNU sparse map
# gives ValueError or IndexError, a huge number field OverflowError).
_TAR_ERRORS = (
    tarfile.TarError,
    EOFError,
    OSError,
    zipfile.BadZipFile,
    ValueError,
    IndexError,
    OverflowError,
    struct.error,
)


def _walk(stream: IO[bytes], limits: Limits, part: str) -> dict[str, bytes]:
    """Walk a tar stream, checking every member; return the wanted info/ members' bytes.

    `part` is "info" (a .conda's info-*.tar.zst: only info/), "pkg" (its pkg-*.tar.zst:
    no info/) or "whole" (a .tar.bz2)."""
    wanted = {*_JSON_MEMBERS, HAS_PREFIX, ICON_PNG}
    labels = {"info": "info-*.tar.zst", "pkg": "pkg-*.tar.zst", "whole": ".tar.bz2"}
    tree = TreeCheck(labels[part])
    found: dict[str, bytes] = {}
    info_total = 0
    count = 0
    # Stream mode ("r|", forward only) as conda_package_streaming reads packages, with a
    # larger buffer than tarfile's 10 KiB: skipping a member's data is reading it, in buffers.
    with tarfile.open(fileobj=stream, mode="r|", bufsize=_TAR_BUFFER, encoding="utf-8") as tar:
        for member in tar:
            count += 1
            if count > limits.max_members:
                raise UnsafeArchive(f"archive has more than {limits.max_members} members")
            name = member.name
            in_info = name == "info" or name.startswith("info/")
            if part == "info" and not in_info:
                raise UnsafeArchive(f"info-*.tar.zst member {name!r} is outside info/")
            if part == "pkg" and in_info:
                raise UnsafeArchive(
                    f"pkg-*.tar.zst member {name!r} belongs in info-*.tar.zst: it would"
                    " overwrite what Packhouse reads"
                )
            tree.add(member, links=not in_info, where="info/" if in_info else None)
            if not in_info:
                continue
            info_total += member.size
            if info_total > limits.max_info_size:
                raise TooLarge(f"info/ holds more than {limits.max_info_size} bytes")
            if name not in wanted or not member.isreg():
                continue
            if member.size > limits.max_member_size:
                raise TooLarge(
                    f"info/ member {name!r} is {member.size} bytes, over the limit of"
                    f" {limits.max_member_size}"
                )
            reader = tar.extractfile(member)
            if reader is not None:
                found[name] = reader.read()
    tree.finish()
    return found


def _zstd_error(error: zstandard.ZstdError, limits: Limits, member: str) -> InvalidUpload:
    text = str(error)
    if "memory" in text or "window" in text.lower():
        return UnsafeArchive(
            f"{member} needs a zstd window larger than the limit of {limits.max_zstd_window} bytes"
        )
    return InvalidUpload(f"{member} is not valid zstd data: {text}")


def _walk_zstd(zf: zipfile.ZipFile, member: str, limits: Limits, part: str) -> dict[str, bytes]:
    cap = limits.max_info_size + _MiB if part == "info" else limits.max_pkg_decompressed
    label = f"{part}-*.tar.zst"
    decompressor = zstandard.ZstdDecompressor(max_window_size=limits.max_zstd_window)
    try:
        with zf.open(member) as compressed:
            reader = decompressor.stream_reader(compressed, read_size=256 * _KiB)
            capped = _CappedReader(
                reader,
                cap,  # for info/: tar headers and padding on top of the members
                lambda: TooLarge(
                    f"info/ holds more than {limits.max_info_size} bytes"
                    if part == "info"
                    else f"{label} decompresses to more than {cap} bytes"
                ),
            )
            return _walk(capped, limits, part)  # type: ignore[arg-type]
    except zstandard.ZstdError as error:
        raise _zstd_error(error, limits, label) from error


def _read_conda(
    fileobj: BinaryIO, size: int, stem: str, limits: Limits, check_body: bool
) -> dict[str, bytes]:
    entries = scan_zip(fileobj, size, ".conda", methods=_ZIP_METHODS, max_members=16)
    try:
        zf = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
        raise InvalidUpload(
            f"not a valid .conda file: the zip archive is unreadable ({error})"
        ) from error
    with zf:
        names = [info.filename for info in zf.infolist()]
        expected = {"metadata.json", f"info-{stem}.tar.zst", f"pkg-{stem}.tar.zst"}
        if len(names) != 3 or set(names) != expected:
            raise UnsafeArchive(
                f"a .conda archive must hold exactly metadata.json, info-{stem}.tar.zst and"
                f" pkg-{stem}.tar.zst; this one holds {sorted(names)!r}"
            )
        for entry in entries:
            if entry.method != zipfile.ZIP_STORED:
                raise UnsafeArchive(
                    f".conda member {entry.name!r} is deflated; a .conda's members are stored"
                    " (uncompressed in the zip: the tarballs are zstd-compressed already)"
                )
        meta_info = zf.getinfo("metadata.json")
        if meta_info.file_size > limits.max_metadata_json:
            raise TooLarge(f"metadata.json is over the limit of {limits.max_metadata_json} bytes")
        try:
            metadata = orjson.loads(zf.read(meta_info))
        except (orjson.JSONDecodeError, zipfile.BadZipFile, OSError) as error:
            raise InvalidUpload(f"metadata.json is not valid JSON: {error}") from error
        if not isinstance(metadata, dict) or metadata.get("conda_pkg_format_version", 2) != 2:
            raise InvalidUpload("metadata.json must be an object with conda_pkg_format_version 2")
        found = _walk_zstd(zf, f"info-{stem}.tar.zst", limits, "info")
        if check_body:
            _walk_zstd(zf, f"pkg-{stem}.tar.zst", limits, "pkg")
        return found


def _read_tar_bz2(fileobj: BinaryIO, limits: Limits) -> dict[str, bytes]:
    raw = bz2.BZ2File(fileobj, mode="rb")
    capped = _CappedReader(
        raw,
        limits.max_bz2_decompressed,
        lambda: TooLarge(f".tar.bz2 decompresses to more than {limits.max_bz2_decompressed} bytes"),
    )
    return _walk(capped, limits, "whole")  # type: ignore[arg-type]


def _damaged(filename: str, error: BaseException) -> InvalidUpload:
    return InvalidUpload(f"{filename}: the archive is damaged or truncated ({error})")


def read_tar_bz2_members(fileobj: BinaryIO, filename: str, limits: Limits) -> dict[str, bytes]:
    """What `read_package` reads of a `.tar.bz2`, read forward from `fileobj` (a file still
    being received: services/streamed_checks.py): every member checked, the info/ members
    it keeps by name. Pass them to `read_package` as `members`."""
    try:
        return _read_tar_bz2(fileobj, limits)
    except _TAR_ERRORS as error:
        raise _damaged(filename, error) from error


def _load_json_object(found: Mapping[str, bytes], name: str, problems: list[str]) -> dict[str, Any]:
    data = found.get(name)
    if data is None:
        return {}
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        problems.append(f"{name} is not valid JSON: {error}")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{name} must hold a JSON object")
        return {}
    return value


def _index_problems(index: Mapping[str, Any], filename: str, subdir: str | None) -> list[str]:
    problems: list[str] = []
    for key in ("name", "version", "build"):
        if not isinstance(index.get(key), str):
            problems.append(f"info/index.json: {key!r} is required and must be a string")
    build_number = index.get("build_number")
    if not isinstance(build_number, int) or isinstance(build_number, bool) or build_number < 0:
        problems.append("info/index.json: 'build_number' is required and must be an integer >= 0")
    for key in ("depends", "constrains"):
        value = index.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            problems.append(f"info/index.json: {key!r} must be a list of strings")
    timestamp = index.get("timestamp")
    if timestamp is not None and (not isinstance(timestamp, int) or isinstance(timestamp, bool)):
        problems.append("info/index.json: 'timestamp' must be an integer")
    for key in ("subdir", "noarch", "license", "license_family"):
        value = index.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"info/index.json: {key!r} must be a string")
    if problems:
        return problems
    name, version, build = index["name"], index["version"], index["build"]
    problems += name_problems(name) + version_problems(version) + build_problems(build)
    parsed = parse_filename(filename)
    expected = f"{name}-{version}-{build}"
    if parsed is None or parsed.stem != expected:
        problems.append(
            f"filename {filename!r} does not match info/index.json: expected"
            f" '{expected}.conda' or '{expected}.tar.bz2'"
        )
    index_subdir = index.get("subdir")
    if index_subdir is not None:
        problems += subdir_problems(index_subdir)
        if subdir is not None and index_subdir != subdir:
            problems.append(
                f"info/index.json says subdir {index_subdir!r} but the package is placed in"
                f" {subdir!r}"
            )
    return problems


def _prefix_files(found: Mapping[str, bytes], paths: Mapping[str, Any]) -> tuple[PrefixFile, ...]:
    entries: list[PrefixFile] = []
    if paths:
        for item in paths.get("paths") or ():
            if isinstance(item, dict) and item.get("prefix_placeholder"):
                entries.append(
                    PrefixFile(
                        str(item.get("_path")),
                        str(item["prefix_placeholder"]),
                        str(item.get("file_mode") or "text"),
                    )
                )
        return tuple(entries)
    # Old-style packages: `info/has_prefix` lines are `<placeholder> <mode> <path>` or `<path>`.
    for line in found.get(HAS_PREFIX, b"").decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line:
            continue
        parts = line.split(" ", 2)
        if len(parts) == 3:
            entries.append(PrefixFile(parts[2].strip('"'), parts[0].strip('"'), parts[1]))
        else:
            entries.append(PrefixFile(line, "/opt/anaconda1anaconda2anaconda3", "text"))
    return tuple(entries)


_POST_INSTALL_KEYS = (
    "binary_prefix",
    "text_prefix",
    "activate.d",
    "deactivate.d",
    "pre_link",
    "post_link",
    "pre_unlink",
)


def _post_install(paths: Mapping[str, Any]) -> dict[str, bool]:
    """conda-index's post-install flags: derived from paths.json only."""
    flags = dict.fromkeys(_POST_INSTALL_KEYS, False)
    for item in paths.get("paths") or ():
        if not isinstance(item, dict):
            continue
        path = str(item.get("_path", ""))
        if item.get("prefix_placeholder"):
            mode = item.get("file_mode")
            if mode == "binary":
                flags["binary_prefix"] = True
            elif mode == "text":
                flags["text_prefix"] = True
        for key in ("activate.d", "deactivate.d"):
            if path.startswith(f"etc/conda/{key}"):
                flags[key] = True
        for script in ("pre-link", "post-link", "pre-unlink"):
            if fnmatch.fnmatchcase(path, f"*/.*-{script}.*"):
                flags[script.replace("-", "_")] = True
    return flags


def _read_members(
    source: Source, parsed: PackageFilename, limits: Limits, check_body: bool
) -> dict[str, bytes]:
    filename = parsed.filename
    fileobj: BinaryIO = (
        io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    )
    try:
        if parsed.extension == ".conda":
            size = len(source) if isinstance(source, bytes) else os.fstat(fileobj.fileno()).st_size
            return _read_conda(fileobj, size, parsed.stem, limits, check_body)
        return _read_tar_bz2(fileobj, limits)
    except _TAR_ERRORS as error:
        raise _damaged(filename, error) from error
    finally:
        fileobj.close()


def read_package(
    source: Source,
    filename: str | None = None,
    *,
    subdir: str | None = None,
    limits: Limits | None = None,
    digests: Digests | None = None,
    check_body: bool = True,
    members: Mapping[str, bytes] | None = None,
) -> PackageContents:
    """Read and validate one package.

    `source` is a path or the file's bytes; `filename` defaults to the path's name. `subdir`,
    when given, is where the package is placed and must equal index.json's subdir. Pass
    `digests` when the caller already hashed the bytes (an upload streamed to a blob).
    `check_body=False` leaves a .conda's pkg-*.tar.zst unread (its info/ is all a record
    needs): for indexing a channel directory the operator put there, as conda-index does;
    every upload checks the body. A .tar.bz2's body is always checked (it is decompressed
    to reach info/ anyway); `members` passes what `read_tar_bz2_members` read of it already.
    Raises InvalidUpload (with every problem found), UnsafeArchive or TooLarge.
    """
    limits = limits or Limits()
    if filename is None:
        if isinstance(source, bytes):
            raise TypeError("filename is required when source is bytes")
        filename = os.path.basename(os.fspath(source))
    parsed = parse_filename(filename)
    if parsed is None:
        raise InvalidUpload(
            f"{filename!r} is not a conda package filename: expected"
            " '<name>-<version>-<build>.conda' or '<name>-<version>-<build>.tar.bz2'"
        )
    found = (
        dict(members) if members is not None else _read_members(source, parsed, limits, check_body)
    )
    if INDEX_JSON not in found:
        raise InvalidUpload(f"{filename}: info/index.json is missing")
    problems: list[str] = []
    index = _load_json_object(found, INDEX_JSON, problems)
    if not problems:
        problems += _index_problems(index, filename, subdir)
    about = _load_json_object(found, ABOUT_JSON, problems)
    run_exports = _load_json_object(found, RUN_EXPORTS_JSON, problems)
    paths = _load_json_object(found, PATHS_JSON, problems)
    if problems:
        raise InvalidUpload([f"{filename}: {problem}" for problem in problems])
    return PackageContents(
        filename=filename,
        index=index,
        about=about,
        run_exports=run_exports,
        digests=digests or compute_digests(source),
        has_paths_json=PATHS_JSON in found,
        prefix_files=_prefix_files(found, paths),
        post_install=_post_install(paths),
        icon=found.get(ICON_PNG) if index.get("icon") else None,
    )
