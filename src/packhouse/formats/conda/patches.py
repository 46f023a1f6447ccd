"""Repodata patch instructions (`patch_instructions_version` 1), with conda-index semantics.

An instructions document has `packages` and `packages.conda` (`{filename: {key: value}}`,
merged into existing records only; lists and scalars replace, dicts merge), `revoke`
(records get `revoked: true` and the dependency `package_has_been_revoked`) and `remove`
(records leave the subdir and their filenames go to `removed`). A `.tar.bz2` filename in
`packages`, `revoke` or `remove` also applies to the `.conda` of the same name.

Instructions come from a `patch_instructions.json` or from a repodata-patches package, which
holds `<subdir>/patch_instructions.json` for each subdir.
"""

from __future__ import annotations

import bz2
import copy
import io
import os
import tarfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any, cast

import orjson
import zstandard
from conda_package_streaming.package_streaming import tar_generator

from packhouse.errors import InvalidUpload, TooLarge
from packhouse.formats.conda.records import dumps

__all__ = [
    "PatchedRecords",
    "apply_patch_instructions",
    "load_patch_instructions",
    "patch_records",
    "read_patches_package",
]

PATCH_INSTRUCTIONS_VERSION = 1
MAX_INSTRUCTIONS_SIZE = 512 * 1024 * 1024
MAX_ZSTD_WINDOW = 128 * 1024 * 1024


def load_patch_instructions(data: bytes, origin: str = "patch_instructions.json") -> dict[str, Any]:
    try:
        instructions = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise InvalidUpload(f"{origin} is not valid JSON: {error}") from error
    if not isinstance(instructions, dict):
        raise InvalidUpload(f"{origin} must hold a JSON object")
    version = instructions.get("patch_instructions_version", 0)
    if not isinstance(version, int) or version > PATCH_INSTRUCTIONS_VERSION:
        raise InvalidUpload(
            f"{origin} has patch_instructions_version {version!r}; only version 1 is supported"
        )
    for key in ("packages", "packages.conda"):
        if not isinstance(instructions.get(key, {}), dict):
            raise InvalidUpload(f"{origin}: {key!r} must be an object of filename to changes")
    for key in ("revoke", "remove"):
        value = instructions.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise InvalidUpload(f"{origin}: {key!r} must be a list of filenames")
    return instructions


def _merge(base: dict[str, Any], new: Mapping[str, Any], add_missing_keys: bool) -> dict[str, Any]:
    """conda-index's `merge_or_update_dict(merge=False)`; nested levels always add keys."""
    if base == new:
        return base
    for key, value in new.items():
        if key in base or add_missing_keys:
            if isinstance(value, Mapping):
                current = base.get(key, value)
                if not isinstance(current, dict):
                    current = {}
                base[key] = _merge(current, value, True)
            else:
                base[key] = copy.deepcopy(value)
    return base


def _conda_name(filename: str) -> str:
    return filename[: -len(".tar.bz2")] + ".conda" if filename.endswith(".tar.bz2") else filename


def apply_patch_instructions(
    repodata: dict[str, Any], instructions: Mapping[str, Any]
) -> dict[str, Any]:
    """Patch a repodata dict in place (and return it), as conda-index's `_apply_instructions`."""
    repodata.setdefault("removed", [])
    packages = repodata.setdefault("packages", {})
    packages_conda = repodata.setdefault("packages.conda", {})
    _merge(packages, instructions.get("packages", {}), add_missing_keys=False)
    bz2_fixes = {_conda_name(k): v for k, v in instructions.get("packages", {}).items()}
    _merge(packages_conda, bz2_fixes, add_missing_keys=False)
    _merge(packages_conda, instructions.get("packages.conda", {}), add_missing_keys=False)
    for filename in instructions.get("revoke", ()):
        for section, name in ((packages, filename), (packages_conda, _conda_name(filename))):
            if name in section:
                section[name]["revoked"] = True
                section[name].setdefault("depends", []).append("package_has_been_revoked")
    for filename in instructions.get("remove", ()):
        for section, name in ((packages, filename), (packages_conda, _conda_name(filename))):
            if section.pop(name, None):
                repodata["removed"].append(name)
    repodata["removed"].sort()
    return repodata


@dataclass(frozen=True)
class PatchedRecords:
    packages: dict[str, bytes]
    packages_conda: dict[str, bytes]
    removed: list[str]


def patch_records(
    packages: Mapping[str, bytes],
    packages_conda: Mapping[str, bytes],
    instructions: Mapping[str, Any],
) -> PatchedRecords:
    """Patch records held as JSON bytes; only the records the instructions name are re-parsed."""
    named = set(instructions.get("packages", {})) | set(instructions.get("packages.conda", {}))
    named |= set(instructions.get("revoke", ())) | set(instructions.get("remove", ()))
    touched_bz2 = {fn: orjson.loads(packages[fn]) for fn in named if fn in packages}
    conda_names = {_conda_name(fn) for fn in named}
    touched_conda = {
        fn: orjson.loads(packages_conda[fn]) for fn in conda_names if fn in packages_conda
    }
    partial: dict[str, Any] = {
        "packages": touched_bz2,
        "packages.conda": touched_conda,
        "removed": [],
    }
    apply_patch_instructions(partial, instructions)
    removed: list[str] = partial["removed"]
    gone = set(removed)
    new_bz2 = {fn: data for fn, data in packages.items() if fn not in gone}
    new_conda = {fn: data for fn, data in packages_conda.items() if fn not in gone}
    for fn, record in partial["packages"].items():
        new_bz2[fn] = dumps(record)
    for fn, record in partial["packages.conda"].items():
        new_conda[fn] = dumps(record)
    return PatchedRecords(new_bz2, new_conda, removed)


class _Capped(io.RawIOBase):
    def __init__(self, raw: IO[bytes], cap: int) -> None:
        self._raw, self._left = raw, cap

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        data = self._raw.read(want)
        self._left -= len(data)
        if self._left < 0:
            raise TooLarge(
                f"repodata-patches package decompresses to over {MAX_INSTRUCTIONS_SIZE} bytes"
            )
        return data


def read_patches_package(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """`{subdir: instructions}` from a repodata-patches `.tar.bz2` or `.conda`."""
    filename = os.path.basename(os.fspath(path))
    found: dict[str, dict[str, Any]] = {}
    try:
        with open(path, "rb") as fh:
            if filename.endswith(".conda"):
                with zipfile.ZipFile(fh) as zf:
                    stem = filename[: -len(".conda")]
                    decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_ZSTD_WINDOW)
                    with zf.open(f"pkg-{stem}.tar.zst") as compressed:
                        stream = _Capped(
                            cast(IO[bytes], decompressor.stream_reader(compressed)),
                            MAX_INSTRUCTIONS_SIZE,
                        )
                        _collect(stream, found)
            elif filename.endswith(".tar.bz2"):
                _collect(_Capped(bz2.BZ2File(fh), MAX_INSTRUCTIONS_SIZE), found)
            else:
                raise InvalidUpload(f"{filename} is not a .conda or .tar.bz2 package")
    except (
        KeyError,
        tarfile.TarError,
        zipfile.BadZipFile,
        zstandard.ZstdError,
        OSError,
        EOFError,
    ) as error:
        raise InvalidUpload(f"{filename}: cannot read patch instructions ({error})") from error
    return found


def _collect(stream: io.RawIOBase, found: dict[str, dict[str, Any]]) -> None:
    for tar, member in tar_generator(stream):
        parts = member.name.split("/")
        if len(parts) == 2 and parts[1] == "patch_instructions.json" and member.isreg():
            reader = tar.extractfile(member)
            if reader is not None:
                found[parts[0]] = load_patch_instructions(reader.read(), member.name)
