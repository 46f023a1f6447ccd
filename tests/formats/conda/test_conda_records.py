"""Records read from real packages equal the repodata.json conda's tests expect."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from packhouse.errors import InvalidUpload, UnsafeArchive
from packhouse.formats.conda.archive import compute_digests, read_package
from packhouse.formats.conda.records import DROPPED_KEYS, make_record
from packhouse.formats.conda.repodata import assemble_repodata

DATA = Path(__file__).resolve().parents[2] / "data" / "conda"
FORMAT_REPO = DATA / "conda" / "conda_format_repo"
RECIPES = DATA / "conda" / "test-recipes" / "noarch"
ARCHIVES = DATA / "conda-index" / "archives"


def _expected(repodata: Path) -> dict[str, dict[str, object]]:
    doc = json.loads(repodata.read_text())
    return {**doc["packages"], **doc["packages.conda"]}


ZLIB = sorted(p for p in FORMAT_REPO.glob("*/zlib-*") if p.suffix in (".conda", ".bz2"))


def test_six_zlib_packages_are_present() -> None:
    assert len(ZLIB) == 6


@pytest.mark.parametrize("path", ZLIB, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_zlib_record_equals_conda_repodata(path: Path) -> None:
    record = make_record(read_package(path, subdir=path.parent.name))
    expected = _expected(path.parent / "repodata.json")[path.name]
    got = record.record()
    assert set(got) == set(expected)
    for key in expected:
        assert got[key] == expected[key], key


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.conda")), ids=lambda p: p.name)
def test_noarch_record_equals_conda_repodata(path: Path) -> None:
    record = make_record(read_package(path, subdir="noarch"))
    assert record.record() == _expected(RECIPES / "repodata.json")[path.name]


def test_record_json_is_compact_with_sorted_keys() -> None:
    path = FORMAT_REPO / "linux-64" / "zlib-1.2.11-h7b6447c_3.conda"
    record = make_record(read_package(path))
    keys = list(orjson.loads(record.record_json))
    assert keys == sorted(keys)
    assert b" " not in record.record_json.replace(b"libgcc-ng >=7.3.0", b"")


def test_assembled_repodata_equals_expected_for_the_packages_present() -> None:
    subdir = FORMAT_REPO / "osx-64"
    records = [make_record(read_package(p, subdir="osx-64")) for p in sorted(subdir.glob("zlib-*"))]
    data = assemble_repodata(
        "osx-64",
        {r.filename: r.record_json for r in records if not r.is_conda_v2},
        {r.filename: r.record_json for r in records if r.is_conda_v2},
    )
    assert json.loads(data) == json.loads((subdir / "repodata.json").read_text())
    assert list(orjson.loads(data)) == [
        "info",
        "packages",
        "packages.conda",
        "removed",
        "repodata_version",
    ]


def test_empty_repodata_equals_conda_noarch() -> None:
    expected = json.loads((FORMAT_REPO / "noarch" / "repodata.json").read_text())
    assert json.loads(assemble_repodata("noarch", {}, {})) == expected


@pytest.mark.parametrize("path", sorted(ARCHIVES.glob("*")), ids=lambda p: p.name)
def test_old_style_archives(path: Path) -> None:
    contents = read_package(path)
    record = make_record(contents).record()
    assert not DROPPED_KEYS & set(record)
    digests = compute_digests(path)
    assert (record["md5"], record["sha256"], record["size"]) == (
        digests.md5,
        digests.sha256,
        digests.size,
    )
    for key, value in contents.index.items():
        if key not in DROPPED_KEYS and key not in ("md5", "sha256", "size"):
            assert record[key] == value


def test_old_style_nano_keeps_requires_and_has_no_subdir() -> None:
    record = make_record(read_package(ARCHIVES / "nano-2.4.1-0.tar.bz2")).record()
    assert record["requires"] == ["ncurses 5.9", "zlib 1.2.8"]
    assert "subdir" not in record
    assert "platform" not in record
    assert "arch" not in record


def test_prefix_placeholders_are_read() -> None:
    contents = read_package(ARCHIVES / "conda-index-pkg-a-1.0-py27h5e241af_0.tar.bz2")
    assert {p.path for p in contents.prefix_files} == {
        "bin/conda-index-pkg-a",
        "bin/conda-index-pkg-a-helper",
    }
    assert contents.post_install["text_prefix"] is True
    assert contents.post_install["post_link"] is True


def test_malformed_package_is_refused_cleanly() -> None:
    path = DATA / "malformed" / "ca-certificates-2024.7.4-hbcca054_0.conda"
    with pytest.raises(UnsafeArchive, match=r"must hold exactly metadata\.json"):
        read_package(path)


def test_conda_without_metadata_json_is_refused() -> None:
    with pytest.raises(UnsafeArchive, match="must hold exactly"):
        read_package(DATA / "rattler" / "sparse" / "sparse-test-1.0.0-0.conda")


def test_subdir_mismatch_is_refused() -> None:
    path = FORMAT_REPO / "linux-64" / "zlib-1.2.11-h7b6447c_3.conda"
    with pytest.raises(
        InvalidUpload, match="says subdir 'linux-64' but the package is placed in 'osx-64'"
    ):
        read_package(path, subdir="osx-64")


def test_bytes_source_needs_a_filename_and_gives_the_same_record() -> None:
    path = RECIPES / "dependent-2.0-0.conda"
    from_bytes = make_record(read_package(path.read_bytes(), path.name))
    assert from_bytes == make_record(read_package(path))
    with pytest.raises(TypeError):
        read_package(path.read_bytes())
