"""Build small, valid (or deliberately broken) Python distributions for tests."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType

from packaging.utils import canonicalize_name


def load_module(name: str, path: Path) -> ModuleType:
    """The module in the file `path` (one outside the packages: bench/, a test file),
    loaded once per session under `name`."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# bench/conda_synth.py: valid .conda and .tar.bz2 packages made in memory, shared with the
# benchmarks
synth = load_module("conda_synth", Path(__file__).resolve().parents[1] / "bench" / "conda_synth.py")


def _dist_name(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def metadata_text(
    name: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    requires_python: str | None = None,
    summary: str = "A package built by the Packhouse tests",
    metadata_version: str = "2.1",
    extra_headers: Mapping[str, str] | None = None,
) -> str:
    lines = [
        f"Metadata-Version: {metadata_version}",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
    ]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    lines += [f"{k}: {v}" for k, v in (extra_headers or {}).items()]
    return "\n".join(lines) + "\n\nLong description.\n"


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    requires_python: str | None = None,
    module_source: str | None = None,
    metadata: str | None = None,
    omit: Iterable[str] = (),
    extra_members: Mapping[str, bytes] | None = None,
) -> Path:
    """A pure-Python wheel with one module `<name>.py`; `omit` drops METADATA/WHEEL/RECORD."""
    dist = _dist_name(name)
    info = f"{dist}-{version}.dist-info"
    module = module_source if module_source is not None else f"VERSION = {version!r}\n"
    members: dict[str, bytes] = {
        f"{dist}.py": module.encode(),
        f"{info}/METADATA": (
            metadata
            or metadata_text(name, version, requires=requires, requires_python=requires_python)
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: packhouse-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    members.update(extra_members or {})
    record_lines = []
    for member, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record_lines.append(f"{member},sha256={digest},{len(data)}")
    record_lines.append(f"{info}/RECORD,,")
    members[f"{info}/RECORD"] = ("\n".join(record_lines) + "\n").encode()
    for short in omit:
        members.pop(f"{info}/{short}", None)
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def make_sdist(directory: Path, name: str, version: str, *, requires: Iterable[str] = ()) -> Path:
    """A `.tar.gz` source distribution with PKG-INFO and a setuptools pyproject."""
    dist = _dist_name(name)
    top = f"{dist}-{version}"
    files = {
        f"{top}/PKG-INFO": metadata_text(name, version, requires=requires).encode(),
        f"{top}/pyproject.toml": (
            f'[project]\nname = "{name}"\nversion = "{version}"\n'
            '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        ).encode(),
        f"{top}/{dist}.py": f"VERSION = {version!r}\n".encode(),
    }
    path = directory / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for member, data in files.items():
            entry = tarfile.TarInfo(member)
            entry.size = len(data)
            tf.addfile(entry, io.BytesIO(data))
    return path
