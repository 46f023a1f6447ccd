"""`packhouse fsck --repair`: check every blob a row needs by its hash, mend what can be
derived again, and list what cannot.

- a PEP 658 metadata file missing or damaged: read again from its wheel (when the wheel's
  blob is sound and the METADATA in it has the recorded hash) and stored;
- a proxy's cached file or index document missing or damaged: the cache rows are forgotten
  (and a damaged blob deleted where nothing else uses it), so the next read fetches it from
  the upstream again;
- an uploaded file missing or damaged: cannot be mended (its bytes exist nowhere else
  here); listed with its repository, so it can be deleted and uploaded under a new version.

Unreferenced blobs and abandoned temporary files are `fsck --remove`'s (which `--repair`
implies). Rendered pages are not stored: each process keeps them in memory, keyed by the
journal serials they depend on, so there is no stale page on disk to re-derive.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packhouse.db import integrity_store
from packhouse.db.integrity_store import BlobUse
from packhouse.errors import ArtifactNotFound, PackhouseError
from packhouse.formats.pypi.archives import ArchiveLimits, read_metadata
from packhouse.formats.pypi.filenames import parse_dist_filename
from packhouse.services import artifacts
from packhouse.services.context import Context
from packhouse.types import Sha256

_CHUNK = 1024 * 1024

Progress = Callable[[int], None]


@dataclass
class RepairReport:
    checked: int = 0  # distinct blobs hashed
    mended: list[str] = field(default_factory=list)
    unmendable: list[str] = field(default_factory=list)


def _no_progress(_done: int) -> None:
    return None


def repair(ctx: Context, progress: Progress = _no_progress) -> RepairReport:
    report = RepairReport()
    state: dict[str, str] = {}  # sha256 -> "ok", "missing" or "damaged:<actual sha256>"
    problems: list[tuple[BlobUse, str]] = []
    with ctx.db.read() as conn:
        for use in integrity_store.blob_uses(conn):
            if use.sha256 not in state:
                state[use.sha256] = _check(ctx, use.sha256)
                report.checked += 1
                progress(report.checked)
            if state[use.sha256] != "ok":
                problems.append((use, state[use.sha256]))
    for use, problem in problems:
        _mend(ctx, use, problem, state, report)
    return report


def _check(ctx: Context, sha256: str) -> str:
    digest = hashlib.sha256()
    try:
        with ctx.blobs.open(Sha256(sha256)) as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
    except ArtifactNotFound:
        return "missing"
    actual = digest.hexdigest()
    return "ok" if actual == sha256 else f"damaged:{actual}"


def _what(use: BlobUse, problem: str) -> str:
    if problem == "missing":
        return f"{use.repository} {use.label}: blob {use.sha256} is missing"
    actual = problem.removeprefix("damaged:")
    return f"{use.repository} {use.label}: blob {use.sha256} holds bytes whose sha256 is {actual}"


def _mend(
    ctx: Context, use: BlobUse, problem: str, state: dict[str, str], report: RepairReport
) -> None:
    what = _what(use, problem)
    if use.kind in ("upstream_file", "upstream_page"):
        with ctx.db.write() as conn:
            forgotten = integrity_store.forget_upstream_copies(conn, use.sha256)
        if problem != "missing":
            artifacts.drop_unreferenced(ctx, [use.sha256])
        if forgotten:
            report.mended.append(f"{what}: the cached copy is forgotten, fetched again when read")
        return
    if use.kind == "metadata" and use.wheel_sha256 and state.get(use.wheel_sha256) == "ok":
        if state.get(use.sha256) == "ok":
            return  # mended already (two artifacts share it)
        reason = _rederive_metadata(ctx, use)
        if reason is None:
            state[use.sha256] = "ok"
            report.mended.append(f"{what}: read again from the wheel")
            return
        what += f" ({reason})"
    report.unmendable.append(f"{what}: cannot be mended here")


def _rederive_metadata(ctx: Context, use: BlobUse) -> str | None:
    """Store the wheel's METADATA under the recorded hash; None when done, else why not."""
    assert use.wheel_sha256 is not None
    wheel_name = use.label.removesuffix(".metadata")
    try:
        dist = parse_dist_filename(wheel_name)
        with tempfile.TemporaryDirectory(dir=ctx.tmp_dir) as scratch:
            path = ctx.blobs.local_path(Sha256(use.wheel_sha256))
            if path is None:
                path = Path(scratch) / wheel_name
                with ctx.blobs.open(Sha256(use.wheel_sha256)) as src, path.open("wb") as out:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
            raw = read_metadata(path, dist, ArchiveLimits())
    except PackhouseError as exc:
        return f"the wheel's metadata cannot be read: {exc.message}"
    if hashlib.sha256(raw).hexdigest() != use.sha256:
        return "the wheel's METADATA does not have the recorded hash"
    ctx.blobs.delete(Sha256(use.sha256))  # a damaged copy; put_* keeps what is there
    ctx.blobs.put_bytes(Sha256(use.sha256), raw)
    return None
