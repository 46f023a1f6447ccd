"""`packhouse pypi index DIR`: a PEP 503 / PEP 691 tree for a directory of wheels and sdists,
the PyPI twin of `packhouse conda index`, incremental.

For the files at the top of DIR it writes

    DIR/simple/index.html, index.json                the project list
    DIR/simple/<project>/index.html, index.json      each project's files, linked ../../<file>
    DIR/<wheel>.metadata                             PEP 658 core metadata (wheels only)

with the renderers the server uses (formats/pypi/simple.py). pip and uv read it as
`--index-url file:///DIR/simple/` or from any static web server.

Each file's hash and metadata are kept in DIR/.packhouse-pypi-index.json by name, size and
mtime: a re-run reads only files that are new or changed, and rewrites only pages whose bytes
change; pages and metadata files of removed files are removed. A file that is not a valid
distribution (a bad name, metadata that does not match it) is skipped with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from packhouse.errors import InvalidInput, PackhouseError
from packhouse.formats.pypi import simple
from packhouse.formats.pypi.archives import ArchiveLimits, read_metadata
from packhouse.formats.pypi.filenames import parse_dist_filename
from packhouse.formats.pypi.metadata import check_matches_filename, parse_core_metadata
from packhouse.services.pypi_parts import sort_key, version_order

CACHE = ".packhouse-pypi-index.json"
CACHE_VERSION = 1
_CHUNK = 1024 * 1024

Progress = Callable[[int, int], None]


@dataclass
class PypiIndexReport:
    files: int = 0
    read: int = 0
    projects: int = 0
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def _no_progress(_done: int, _total: int) -> None:
    return None


def index_directory(root: Path, progress: Progress = _no_progress) -> PypiIndexReport:
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a directory")
    report = PypiIndexReport()
    cached = _load_cache(root)
    entries: dict[str, dict[str, Any]] = {}
    with os.scandir(root) as scan:
        candidates = sorted(
            (e for e in scan if e.is_file() and _looks_like_dist(e.name)), key=lambda e: e.name
        )
    for i, item in enumerate(candidates):
        progress(i, len(candidates))
        stat = item.stat()
        old = cached.get(item.name)
        if old is not None and (old["size"], old["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns):
            entries[item.name] = old
            continue
        try:
            entries[item.name] = _read(root, Path(item.path), stat)
        except PackhouseError as exc:
            report.failures.append((item.name, exc.message))
            continue
        report.read += 1
    progress(len(candidates), len(candidates))
    report.files = len(entries)

    # PEP 658 files of wheels that are gone
    for name in cached:
        if name not in entries and cached[name].get("metadata_sha256"):
            meta = root / f"{name}.metadata"
            if meta.exists():
                meta.unlink()
                report.removed.append(meta.name)

    by_project: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for filename, entry in entries.items():
        by_project.setdefault(entry["name"], []).append((filename, entry))
    report.projects = len(by_project)
    pages = root / "simple"
    for name, files in by_project.items():
        files.sort(key=lambda f: (sort_key(f[1]["version"]), f[0]))
        page = simple.ProjectPage(
            name=name,
            files=[_simple_file(filename, e) for filename, e in files],
            versions=sorted({e["version"] for _, e in files}, key=version_order),
            last_serial=0,
        )
        _put(pages / name / "index.html", simple.project_html(page), report)
        _put(pages / name / "index.json", simple.project_json(page), report)
    index = simple.ProjectIndex(projects=sorted(by_project), last_serial=0)
    _put(pages / "index.html", simple.index_html(index), report)
    _put(pages / "index.json", simple.index_json(index), report)
    for stale in sorted(p for p in pages.iterdir() if p.is_dir() and p.name not in by_project):
        shutil.rmtree(stale)
        report.removed.append(f"simple/{stale.name}/")
    _save_cache(root, entries)
    return report


def _looks_like_dist(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith((".whl", ".tar.gz", ".zip"))


def _read(root: Path, path: Path, stat: os.stat_result) -> dict[str, Any]:
    dist = parse_dist_filename(path.name, legacy_names=True)  # files that exist already
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
    raw = read_metadata(path, dist, ArchiveLimits())
    meta = parse_core_metadata(raw)
    check_matches_filename(meta, dist)
    metadata_sha256 = None
    if dist.kind == "wheel":  # as the server: PEP 658 files for wheels only
        metadata_sha256 = hashlib.sha256(raw).hexdigest()
        target = root / f"{path.name}.metadata"
        if not target.exists() or target.read_bytes() != raw:
            _write(target, raw)
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": digest.hexdigest(),
        "name": str(dist.name),
        "version": str(dist.version),
        "requires_python": meta.requires_python,
        "metadata_sha256": metadata_sha256,
    }


def _simple_file(filename: str, entry: dict[str, Any]) -> simple.SimpleFile:
    return simple.SimpleFile(
        filename=filename,
        url=f"../../{quote(filename)}",
        sha256=entry["sha256"],
        requires_python=entry["requires_python"],
        yanked=None,
        metadata_sha256=entry["metadata_sha256"],
        size=entry["size"],
        upload_time=datetime.fromtimestamp(entry["mtime_ns"] / 1e9, UTC),
    )


def _put(path: Path, data: bytes, report: PypiIndexReport) -> None:
    """Write a page only when its bytes change."""
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    _write(path, data)
    report.written.append(str(path))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _load_cache(root: Path) -> dict[str, dict[str, Any]]:
    try:
        data = orjson.loads((root / CACHE).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}  # none yet, or damaged: every file is read again
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _save_cache(root: Path, entries: dict[str, dict[str, Any]]) -> None:
    _write(root / CACHE, orjson.dumps({"version": CACHE_VERSION, "files": entries}))
