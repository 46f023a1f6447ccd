"""Tiny, valid wheels for benchmarks and tests.

    from wheelgen import make_wheel
    path = make_wheel(tmp_dir, "demo-pkg", "1.0.3")

A wheel here is a zip holding one module plus `{name}-{ver}.dist-info/` with METADATA, WHEEL
and RECORD (with real sha256 lines), so anything that reads wheels accepts it. Building one
takes well under a millisecond: no compression, no build backend.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def _escape(name: str) -> str:
    """The wheel filename form of a project name (PEP 427 / binary distribution format)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def wheel_filename(name: str, version: str, tag: str = "py3-none-any") -> str:
    return f"{_escape(name)}-{version}-{tag}.whl"


def wheel_bytes(
    name: str,
    version: str,
    tag: str = "py3-none-any",
    *,
    summary: str = "A synthetic package for benchmarks",
    requires_python: str | None = ">=3.8",
    requires_dist: Iterable[str] = (),
    payload: int = 0,
) -> bytes:
    """The bytes of a wheel for `name` `version`. `payload` adds that many bytes of module
    text, to make bigger files."""
    import io

    dist_info = f"{_escape(name)}-{version}.dist-info"
    metadata_lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
    ]
    if requires_python:
        metadata_lines.append(f"Requires-Python: {requires_python}")
    metadata_lines += [f"Requires-Dist: {r}" for r in requires_dist]
    files: list[tuple[str, bytes]] = [
        (f"{_escape(name)}/__init__.py", f"VERSION = {version!r}\n".encode() + b"#" * payload),
        (f"{dist_info}/METADATA", ("\n".join(metadata_lines) + "\n").encode()),
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: wheelgen\nRoot-Is-Purelib: true\n"
            + f"Tag: {tag}\n".encode(),
        ),
    ]
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files)
    record += f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for path, data in files:
            zf.writestr(zipfile.ZipInfo(path, _ZIP_DATE), data)
    return out.getvalue()


def make_wheel(
    directory: Path, name: str, version: str, tag: str = "py3-none-any", **kwargs: object
) -> Path:
    """Write the wheel into `directory` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / wheel_filename(name, version, tag)
    path.write_bytes(wheel_bytes(name, version, tag, **kwargs))  # type: ignore[arg-type]
    return path


def versions(count: int) -> Iterator[str]:
    """`count` distinct, increasing versions: 0.0.0, 0.0.1, ... 0.0.99, 0.1.0, ..."""
    for i in range(count):
        yield f"{i // 10000}.{(i // 100) % 100}.{i % 100}"


def make_wheels(directory: Path, projects: Iterable[str], per_project: int) -> list[Path]:
    """`per_project` wheels for each project, each a distinct version."""
    return [
        make_wheel(directory, project, version)
        for project in projects
        for version in versions(per_project)
    ]
