"""Property tests: every parser of untrusted input in formats/ answers anything at all with a
result or a domain error (PackhouseError, which web/errors.py maps to 4xx), never another
exception (a 500). Random input and mutations of the real packages in tests/data."""

from __future__ import annotations

import bz2
import contextlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packhouse.errors import PackhouseError
from packhouse.formats.conda.archive import read_package
from packhouse.formats.conda.names import (
    build_problems,
    name_problems,
    parse_filename,
    subdir_problems,
    version_problems,
)
from packhouse.formats.pypi.archives import ArchiveLimits, read_metadata
from packhouse.formats.pypi.entrypoints import check_entry_points
from packhouse.formats.pypi.filenames import parse_dist_filename
from packhouse.formats.pypi.metadata import parse_core_metadata
from packhouse.formats.pypi.simple import negotiate
from packhouse.formats.zipscan import scan_zip
from packhouse.web.negotiate import preferred

DATA = Path(__file__).resolve().parents[1] / "data"
# PH_FUZZ_FAST / PH_FUZZ_SLOW raise the example counts for a longer hunt than the suite's.
FAST = settings(max_examples=int(os.environ.get("PH_FUZZ_FAST", 300)), deadline=None, database=None)
SLOW = settings(
    max_examples=int(os.environ.get("PH_FUZZ_SLOW", 60)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def domain_only(call: Callable[[], object]) -> None:
    """Run `call`; a PackhouseError is a fine answer, anything else fails the test."""
    with contextlib.suppress(PackhouseError):
        call()


# --- names and filenames ----------------------------------------------------------------------

filename_text = st.one_of(
    st.text(max_size=120),
    st.from_regex(
        r"[A-Za-z0-9_.!+-]{1,20}-[0-9a-z.!+_-]{1,12}(-[0-9][A-Za-z0-9_]*)?"
        r"-[a-z0-9_.]{1,12}-[a-z0-9_]{1,12}-[a-z0-9_.]{1,30}\.whl",
        fullmatch=True,
    ),
    st.from_regex(
        r"[A-Za-z0-9_.-]{1,20}-[0-9a-z.!+_-]{1,12}\.(tar\.gz|zip|tar\.bz2|conda)", fullmatch=True
    ),
)


@FAST
@given(filename_text)
def test_pypi_filenames(text: str) -> None:
    domain_only(lambda: parse_dist_filename(text))


@FAST
@given(filename_text)
def test_conda_filenames_and_names(text: str) -> None:
    parse_filename(text)  # None or a PackageFilename; never raises
    for check in (name_problems, version_problems, build_problems, subdir_problems):
        assert isinstance(check(text), list)


# --- core metadata and entry points -----------------------------------------------------------

header_names = st.sampled_from(
    [
        "Metadata-Version",
        "Name",
        "Version",
        "Requires-Dist",
        "Requires-Python",
        "Summary",
        "Description-Content-Type",
        "License-Expression",
        "License-File",
        "Provides-Extra",
        "Dynamic",
        "Project-URL",
        "Classifier",
        "Keywords",
        "X-Unknown",
    ]
)
metadata_bytes = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.tuples(header_names, st.text(max_size=60)), max_size=12).map(
        lambda items: "".join(f"{k}: {v}\n" for k, v in items).encode("utf-8", "surrogatepass")
    ),
)


@FAST
@given(metadata_bytes)
def test_core_metadata(data: bytes) -> None:
    domain_only(lambda: parse_core_metadata(data))


@FAST
@given(st.one_of(st.binary(max_size=500), st.text(max_size=300).map(str.encode)))
def test_entry_points(data: bytes) -> None:
    domain_only(lambda: check_entry_points(b"[console_scripts]\n" + data))


# --- Accept headers -----------------------------------------------------------------------------

media = st.sampled_from(
    [
        "text/html",
        "application/vnd.pypi.simple.v1+json",
        "application/vnd.pypi.simple.v1+html",
        "application/vnd.pypi.simple.latest+json",
        "application/json",
        "*/*",
        "text/*",
        "",
        "x",
    ]
)
accept_text = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=255), max_size=200),
    st.lists(
        st.tuples(media, st.one_of(st.none(), st.text(max_size=8), st.floats().map(str))),
        max_size=6,
    ).map(lambda items: ", ".join(m if q is None else f"{m};q={q}" for m, q in items)),
)


@FAST
@given(accept_text, st.one_of(st.none(), st.text(max_size=40), media))
def test_accept_headers(accept: str, format_param: str | None) -> None:
    domain_only(lambda: negotiate(accept, format_param))
    assert preferred(accept) in (None, "html", "json", "text")


# --- archives: random bytes ---------------------------------------------------------------------


def read_pypi(data: bytes, filename: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / filename
        path.write_bytes(data)
        domain_only(lambda: read_metadata(path, parse_dist_filename(filename), ArchiveLimits()))


@SLOW
@given(
    st.binary(max_size=4000),
    st.sampled_from(["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz", "demo-1.0.zip"]),
)
def test_random_bytes_as_pypi_archives(data: bytes, filename: str) -> None:
    read_pypi(data, filename)


@SLOW
@given(st.binary(max_size=4000), st.sampled_from(["demo-1.0-0.conda", "demo-1.0-0.tar.bz2"]))
def test_random_bytes_as_conda_packages(data: bytes, filename: str) -> None:
    domain_only(lambda: read_package(data, filename))


@SLOW
@given(st.binary(max_size=3000))
def test_random_bytes_as_zip(data: bytes) -> None:
    domain_only(
        lambda: scan_zip(io.BytesIO(data), len(data), "zip", methods=(0, 8), max_members=100)
    )


# --- archives: mutations of real ones -----------------------------------------------------------

REAL_PYPI = [DATA / "pypi" / n for n in ("six-1.16.0-py2.py3-none-any.whl", "six-1.16.0.tar.gz")]
REAL_CONDA = [
    DATA / "conda" / "conda" / "test-recipes" / "noarch" / "dependency-1.0-0.conda",
    DATA / "conda" / "conda-index" / "index_hotfix_pkgs" / "osx-64" / "revoke_test-1.0-0.tar.bz2",
    DATA / "conda" / "conda" / "conda_format_repo" / "linux-64" / "zlib-1.2.11-h7b6447c_3.conda",
]
REAL_BYTES = {path.name: path.read_bytes() for path in [*REAL_PYPI, *REAL_CONDA]}


@st.composite
def mutated(draw: st.DrawFn, names: list[str]) -> tuple[str, bytes]:
    """A real archive with a few bytes overwritten, inserted or cut, or cut short."""
    name = draw(st.sampled_from(names))
    data = bytearray(REAL_BYTES[name])
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["set", "insert", "delete", "truncate", "header"]))
        if how == "set":
            data[at] = draw(st.integers(0, 255))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif how == "truncate":
            del data[at:]
        else:  # somewhere in the first or last 200 bytes, where the headers are
            spot = draw(st.integers(0, min(199, len(data) - 1)))
            spot = spot if draw(st.booleans()) else len(data) - 1 - spot
            data[spot] = draw(st.integers(0, 255))
        if not data:
            data = bytearray(b"\0")
    return name, bytes(data)


@SLOW
@given(mutated([p.name for p in REAL_PYPI]))
def test_mutated_real_pypi_archives(case: tuple[str, bytes]) -> None:
    name, data = case
    read_pypi(data, name)


@SLOW
@given(mutated([p.name for p in REAL_CONDA]))
def test_mutated_real_conda_packages(case: tuple[str, bytes]) -> None:
    name, data = case
    domain_only(lambda: read_package(data, name))


def test_the_real_archives_pass_unmutated() -> None:
    """The mutation tests start from packages that are accepted as they are."""
    for path in REAL_PYPI:
        read_metadata(path, parse_dist_filename(path.name), ArchiveLimits())
    for path in REAL_CONDA:
        read_package(path)


# --- index.json -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
index_keys = st.sampled_from(
    [
        "name",
        "version",
        "build",
        "build_number",
        "depends",
        "constrains",
        "subdir",
        "noarch",
        "timestamp",
        "license",
        "license_family",
        "platform",
        "arch",
        "track_features",
        "icon",
    ]
)
index_objects = st.fixed_dictionaries(
    {"name": st.just("demo"), "version": st.just("1.0"), "build": st.just("0")},
    optional={"build_number": json_values, "subdir": json_values, "depends": json_values},
).flatmap(lambda base: st.dictionaries(index_keys, json_values, max_size=8).map(base.__or__))


def dumps(value: object) -> bytes:
    return json.dumps(value).encode()  # big integers too, which orjson cannot write


def tar_bz2_with(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return bz2.compress(buffer.getvalue(), 1)


@SLOW
@given(
    st.one_of(index_objects.map(dumps), json_values.map(dumps), st.binary(max_size=300)),
    st.one_of(st.none(), json_values.map(dumps)),
)
def test_index_json(index: bytes, about: bytes | None) -> None:
    members = {"info/index.json": index}
    if about is not None:
        members["info/about.json"] = about
        members["info/paths.json"] = about
        members["info/run_exports.json"] = about
    domain_only(lambda: read_package(tar_bz2_with(members), "demo-1.0-0.tar.bz2", subdir="noarch"))
