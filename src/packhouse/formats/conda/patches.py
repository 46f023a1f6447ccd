"""Repodata patch instructions (`patch_instructions_version` 1), with conda-index semantics.

An instructions document has `packages` and `packages.conda` (`{filename: {key: value}}`,
merged into existing records only; lists and scalars replace, dicts merge), `revoke`
(records get `revoked: true` and the dependency `package_has_been_revoked`) and `remove`
(records leave the subdir and their filenames go to `removed`). A `.tar.bz2` filename in
`packages`, `revoke` or `remove` also applies to the `.conda` of the same name.

Untrusted documents are read in two steps: `parse_patch_instructions` turns the raw JSON
into a validated `PatchInstructions`, collecting every problem field by field; an upload
with any problem is refused with the full list, and a stored document from before this
check is applied without its bad entries (logged), so no page can fail on it.

Instructions come from a `patch_instructions.json` or from a repodata-patches package, which
holds `<subdir>/patch_instructions.json` for each subdir.
"""

from __future__ import annotations

import bz2
import copy
import io
import logging
import os
import tarfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, cast

import orjson
import zstandard
from conda_package_streaming.package_streaming import tar_generator

from packhouse.errors import InvalidUpload, TooLarge
from packhouse.formats.conda.records import dumps

__all__ = [
    "PatchInstructions",
    "PatchedRecords",
    "apply_patch_instructions",
    "as_instructions",
    "load_patch_instructions",
    "parse_patch_instructions",
    "patch_records",
    "read_patches_package",
]

PATCH_INSTRUCTIONS_VERSION = 1
MAX_INSTRUCTIONS_SIZE = 512 * 1024 * 1024
MAX_ZSTD_WINDOW = 128 * 1024 * 1024

log = logging.getLogger("packhouse.conda")

_SECTIONS = ("packages", "packages.conda")
_LISTS = ("revoke", "remove")
_TOP_LEVEL = frozenset({"patch_instructions_version", *_SECTIONS, *_LISTS})
_ABSENT = object()
# What identifies a record or its bytes; a patch changing them would break clients.
_FIXED = frozenset({"name", "version", "build", "subdir", "md5", "sha256", "size"})


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# Field -> (what it must be, check). conda-index merges values as sent; `null` is allowed
# only for optional fields, where conda reads it as absent (the conda-forge patches set
# `features: null` and `track_features: null`).
_FIELDS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "depends": ("a list of strings", _strings),
    "constrains": ("a list of strings or null", lambda v: v is None or _strings(v)),
    "track_features": (
        "a string, a list of strings or null",
        lambda v: v is None or isinstance(v, str) or _strings(v),
    ),
    "features": (
        "a string, a list of strings or null",
        lambda v: v is None or isinstance(v, str) or _strings(v),
    ),
    "build_number": ("a non-negative integer", _int),
    "timestamp": ("a non-negative integer (milliseconds) or null", lambda v: v is None or _int(v)),
    "license": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "license_family": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "noarch": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "platform": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "arch": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "revoked": ("true or false", lambda v: isinstance(v, bool)),
}


def _is_package_filename(filename: str) -> bool:
    return filename.endswith((".conda", ".tar.bz2")) and "/" not in filename


@dataclass(frozen=True)
class PatchInstructions:
    """Validated instructions: every entry kept has the types conda-index and conda expect."""

    packages: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    packages_conda: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    revoke: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    def named(self) -> set[str]:
        return {*self.packages, *self.packages_conda, *self.revoke, *self.remove}


def _changes_problems(where: str, changes: object) -> list[str]:
    if not isinstance(changes, dict):
        return [f"{where} must be an object of field changes, not {_type_name(changes)}"]
    problems: list[str] = []
    for key, value in changes.items():
        if key in _FIXED:
            problems.append(f"{where}.{key} cannot be patched: it identifies the package file")
        elif key in _FIELDS:
            expected, check = _FIELDS[key]
            if not check(value):
                problems.append(f"{where}.{key} must be {expected}, not {_type_name(value)}")
    return problems


def parse_patch_instructions(
    raw: object, origin: str = "patch_instructions.json"
) -> tuple[PatchInstructions, list[str]]:
    """The valid part of a raw instructions document, and every problem found in the rest.

    An upload is refused when there is any problem; a stored document (from before this
    check) is applied without the entries that have one.
    """
    if not isinstance(raw, dict):
        return PatchInstructions(), [f"{origin} must hold a JSON object, not {_type_name(raw)}"]
    problems: list[str] = []
    version = raw.get("patch_instructions_version", 0)
    if isinstance(version, bool) or version not in (0, PATCH_INSTRUCTIONS_VERSION):
        problems.append(
            f"{origin} has patch_instructions_version {version!r}; only version 1 is supported"
        )
    for key in sorted(set(raw) - _TOP_LEVEL):
        problems.append(f"{origin}: unknown key {key!r}; expected {', '.join(sorted(_TOP_LEVEL))}")
    sections: list[dict[str, Mapping[str, Any]]] = []
    for key in _SECTIONS:
        section = raw.get(key, {})
        kept: dict[str, Mapping[str, Any]] = {}
        sections.append(kept)
        if not isinstance(section, dict):
            problems.append(
                f"{origin}: {key!r} must be an object of filename to changes,"
                f" not {_type_name(section)}"
            )
            continue
        for filename, changes in section.items():
            where = f"{origin}: {key}[{filename!r}]"
            found = (
                []
                if _is_package_filename(filename)
                else [f"{where}: not a conda package filename (.conda or .tar.bz2)"]
            )
            found += _changes_problems(where, changes)
            if found:
                problems += found
            else:
                kept[filename] = changes
    lists: list[tuple[str, ...]] = []
    for key in _LISTS:
        value = raw.get(key, [])
        if not isinstance(value, list):
            problems.append(
                f"{origin}: {key!r} must be a list of filenames, not {_type_name(value)}"
            )
            lists.append(())
            continue
        good: list[str] = []
        for index, item in enumerate(value):
            if isinstance(item, str) and _is_package_filename(item):
                good.append(item)
            else:
                problems.append(
                    f"{origin}: {key}[{index}] must be a conda package filename, not {item!r}"
                )
        lists.append(tuple(good))
    return PatchInstructions(sections[0], sections[1], lists[0], lists[1]), problems


def load_patch_instructions(data: bytes, origin: str = "patch_instructions.json") -> dict[str, Any]:
    """A valid instructions document, as sent; InvalidUpload lists every problem otherwise."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise InvalidUpload(f"{origin} is not valid JSON: {error}") from error
    _, problems = parse_patch_instructions(raw, origin)
    if problems:
        raise InvalidUpload(problems)
    instructions: dict[str, Any] = raw
    return instructions


def as_instructions(
    instructions: Mapping[str, Any] | PatchInstructions, origin: str = "patch instructions"
) -> PatchInstructions:
    """Validated instructions; entries with a problem are logged and left out."""
    if isinstance(instructions, PatchInstructions):
        return instructions
    raw: object = instructions
    if isinstance(raw, Mapping) and not isinstance(raw, dict):
        raw = dict(raw)
    parsed, problems = parse_patch_instructions(raw, origin)
    for problem in problems:
        log.warning("skipping a patch instruction: %s", problem)
    return parsed


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
    repodata: dict[str, Any], instructions: Mapping[str, Any] | PatchInstructions
) -> dict[str, Any]:
    """Patch a repodata dict in place (and return it), as conda-index's `_apply_instructions`."""
    valid = as_instructions(instructions)
    repodata.setdefault("removed", [])
    packages = repodata.setdefault("packages", {})
    packages_conda = repodata.setdefault("packages.conda", {})
    _merge(packages, valid.packages, add_missing_keys=False)
    bz2_fixes = {_conda_name(k): v for k, v in valid.packages.items()}
    _merge(packages_conda, bz2_fixes, add_missing_keys=False)
    _merge(packages_conda, valid.packages_conda, add_missing_keys=False)
    for filename in valid.revoke:
        for section, name in ((packages, filename), (packages_conda, _conda_name(filename))):
            if name in section:
                section[name]["revoked"] = True
                section[name].setdefault("depends", []).append("package_has_been_revoked")
    for filename in valid.remove:
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
    instructions: Mapping[str, Any] | PatchInstructions,
) -> PatchedRecords:
    """Patch records held as JSON bytes; only the records the instructions name are re-parsed.

    Entries of the instructions that are not valid are logged and skipped, so a document
    stored before validation was complete cannot break a page.
    """
    valid = as_instructions(instructions)
    named = valid.named()
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
    # CEP 47: `indexed_timestamp` says when the channel first indexed the bytes; a patch
    # (conda-index's included) never moves it, so `--exclude-newer` keeps its meaning.
    stamps = [
        {fn: record.get("indexed_timestamp", _ABSENT) for fn, record in section.items()}
        for section in (touched_bz2, touched_conda)
    ]
    apply_patch_instructions(partial, valid)
    for section, kept in zip((touched_bz2, touched_conda), stamps, strict=True):
        for fn, record in section.items():
            if kept[fn] is _ABSENT:
                record.pop("indexed_timestamp", None)
            else:
                record["indexed_timestamp"] = kept[fn]
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
