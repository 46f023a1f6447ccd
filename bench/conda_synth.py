"""Synthetic conda channels: N small, valid packages, half `.conda`, half `.tar.bz2`.

`make_channel(root, n)` spreads packages over subdirs (noarch, linux-64, osx-64 by default),
about five versions per name, each package depending on the previous name. Packages are
built in memory with the standard library, zstandard and orjson: fast enough for 20,000.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import zstandard

__all__ = ["make_channel", "make_package", "package_bytes"]

PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"


def _tar(members: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            info.mode = 0o755 if name.startswith("bin/") else 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(members[name]))
    return buffer.getvalue()


def _info_members(
    index: Mapping[str, Any], files: Mapping[str, bytes], prefix_paths: Sequence[str]
) -> dict[str, bytes]:
    paths = []
    for path in sorted(files):
        entry: dict[str, Any] = {
            "_path": path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(files[path]).hexdigest(),
            "size_in_bytes": len(files[path]),
        }
        if path in prefix_paths:
            entry["file_mode"] = "text"
            entry["prefix_placeholder"] = PLACEHOLDER
        paths.append(entry)
    about = {
        "summary": f"synthetic package {index['name']}",
        "license": "MIT",
        "home": "https://example.invalid",
    }
    return {
        "info/index.json": orjson.dumps(index),
        "info/about.json": orjson.dumps(about),
        "info/paths.json": orjson.dumps({"paths": paths, "paths_version": 1}),
        "info/files": "\n".join(sorted(files)).encode() + b"\n",
    }


def package_bytes(
    name: str,
    version: str,
    build: str = "0",
    *,
    subdir: str = "noarch",
    extension: str = ".conda",
    depends: Iterable[str] = (),
    files: Mapping[str, bytes] | None = None,
    prefix_paths: Sequence[str] = (),
    timestamp: int = 1_700_000_000_000,
    extra_index: Mapping[str, Any] | None = None,
) -> tuple[str, bytes]:
    """(filename, bytes) of one valid package."""
    files = dict(
        files
        if files is not None
        else {f"share/{name}/{version}.txt": f"{name} {version}\n".encode()}
    )
    index: dict[str, Any] = {
        "build": build,
        "build_number": int(build.rsplit("_", 1)[-1]) if build.rsplit("_", 1)[-1].isdigit() else 0,
        "depends": list(depends),
        "license": "MIT",
        "name": name,
        "subdir": subdir,
        "timestamp": timestamp,
        "version": version,
    }
    if subdir == "noarch":
        index["noarch"] = "generic"
    index.update(extra_index or {})
    info = _info_members(index, files, prefix_paths)
    stem = f"{name}-{version}-{build}"
    if extension == ".tar.bz2":
        return f"{stem}.tar.bz2", bz2.compress(_tar({**info, **files}), compresslevel=9)
    compressor = zstandard.ZstdCompressor(level=3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", b'{"conda_pkg_format_version": 2}')
        zf.writestr(f"pkg-{stem}.tar.zst", compressor.compress(_tar(files)))
        zf.writestr(f"info-{stem}.tar.zst", compressor.compress(_tar(info)))
    return f"{stem}.conda", buffer.getvalue()


def make_package(directory: Path, name: str, version: str, build: str = "0", **kwargs: Any) -> Path:
    filename, data = package_bytes(name, version, build, **kwargs)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_bytes(data)
    return path


def make_channel(
    root: Path,
    n: int,
    subdirs: Sequence[str] = ("noarch", "linux-64", "osx-64"),
    versions_per_name: int = 5,
    start: int = 0,
) -> list[Path]:
    """Write packages `start .. start+n-1` into `root/<subdir>/`; even ones are `.conda`."""
    paths = []
    for i in range(start, start + n):
        subdir = subdirs[i % len(subdirs)]
        name_index = i // (versions_per_name * len(subdirs))
        version = f"1.{i % (versions_per_name * len(subdirs))}.{i}"
        depends = [f"synth-{name_index - 1} >=1.0"] if name_index else []
        paths.append(
            make_package(
                root / subdir,
                f"synth-{name_index}",
                version,
                "h0_0",
                subdir=subdir,
                extension=".conda" if i % 2 == 0 else ".tar.bz2",
                depends=depends,
                timestamp=1_700_000_000_000 + i,
            )
        )
    for subdir in subdirs:
        (root / subdir).mkdir(parents=True, exist_ok=True)
    return paths
