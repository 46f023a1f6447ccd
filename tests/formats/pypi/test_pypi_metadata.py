from __future__ import annotations

from pathlib import Path

import pytest

from packhouse.errors import InvalidUpload
from packhouse.formats.pypi.archives import ArchiveLimits, read_metadata
from packhouse.formats.pypi.filenames import parse_dist_filename
from packhouse.formats.pypi.metadata import check_matches_filename, parse_core_metadata

DATA = Path(__file__).parents[2] / "data" / "pypi"


def problems(data: bytes) -> list[str]:
    with pytest.raises(InvalidUpload) as caught:
        parse_core_metadata(data)
    return caught.value.problems


@pytest.mark.parametrize("path", sorted(DATA.iterdir()), ids=lambda p: p.name)
def test_real_distributions_parse_and_match(path: Path) -> None:
    dist = parse_dist_filename(path.name)
    meta = parse_core_metadata(read_metadata(path, dist, ArchiveLimits()))
    check_matches_filename(meta, dist)
    assert meta.summary


def test_attrs_license_expression_under_an_older_metadata_version() -> None:
    path = DATA / "attrs-23.2.0-py3-none-any.whl"
    meta = parse_core_metadata(read_metadata(path, parse_dist_filename(path.name), ArchiveLimits()))
    assert meta.metadata_version == "2.1"  # as written, although License-Expression is 2.4
    assert meta.license_expression == "MIT"
    assert meta.license_files == ["LICENSE"]
    assert meta.requires_python == ">=3.7"
    assert meta.description_content_type == "text/markdown"
    assert meta.description is not None
    assert "attrs" in meta.description
    assert meta.project_urls["GitHub"] == "https://github.com/python-attrs/attrs"
    assert any(r.startswith("importlib-metadata") for r in meta.requires_dist)
    assert "tests" in meta.provides_extra


def test_newer_fields_are_still_validated() -> None:
    data = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nLicense-Expression: MIT OR\n"
    assert any(p.startswith("license-expression:") for p in problems(data))


def test_metadata_1_0_with_body_description() -> None:
    meta = parse_core_metadata(
        b"Metadata-Version: 1.0\nName: Old_Thing\nVersion: 0.1\nSummary: old\n"
        b"Platform: UNKNOWN\nKeywords: a,b\n\nThe long\ndescription.\n"
    )
    assert (meta.name, meta.version, meta.summary) == ("Old_Thing", "0.1", "old")
    assert meta.description == "The long\ndescription.\n"
    assert meta.keywords == ["a", "b"]
    assert meta.platforms == ["UNKNOWN"]


def test_metadata_1_1_and_version_normalised() -> None:
    meta = parse_core_metadata(
        b"Metadata-Version: 1.1\nName: demo\nVersion: 01.0-RC1\n"
        b"Classifier: Private :: Do Not Upload\n"
    )
    assert meta.version == "1.0rc1"
    assert meta.classifiers == ["Private :: Do Not Upload"]


def test_metadata_2_1_full() -> None:
    meta = parse_core_metadata(
        b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
        b"Requires-Python: >=3.8,<4\nRequires-Dist: requests (>=2.0)\n"
        b"Requires-Dist: rich; extra == 'cli'\nProvides-Extra: cli\n"
        b"Project-URL: Source, https://example.com/src\n"
        b"Description-Content-Type: text/markdown\nAuthor-email: A <a@example.com>\n"
    )
    assert meta.requires_python == ">=3.8,<4"  # as written, not reordered
    assert meta.requires_dist == ["requests (>=2.0)", "rich; extra == 'cli'"]
    assert meta.provides_extra == ["cli"]
    assert meta.project_urls == {"Source": "https://example.com/src"}
    assert meta.author_email == "A <a@example.com>"


def test_unknown_fields_are_ignored() -> None:
    meta = parse_core_metadata(b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nX-Thing: 1\n")
    assert meta.name == "demo"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"Metadata-Version: 2.1\nName: demo thing\nVersion: 1.0\n",
            "name: 'demo thing' is not a valid project name",
        ),
        (
            b"Metadata-Version: 2.1\nName: demo\nVersion: one\n",
            "version: 'one' is not a valid version",
        ),
        (
            b"Metadata-Version: 2.1\nVersion: 1.0\n",
            "name: the Name field is missing; every distribution must have one",
        ),
        (
            b"Metadata-Version: 2.1\nName: demo\n",
            "version: the Version field is missing; every distribution must have one",
        ),
        (
            b"Metadata-Version: 2.1\nName: a\nName: b\nVersion: 1.0\n",
            "name: the Name field is given more than once or is not valid text",
        ),
        (b"Name: demo\nVersion: 1.0\n", "metadata-version: the Metadata-Version field is missing"),
        (
            b"Metadata-Version: 9.9\nName: demo\nVersion: 1.0\n",
            "metadata-version: '9.9' is not a valid metadata version",
        ),
    ],
)
def test_refusals(data: bytes, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(data)), problems(data)


def test_every_problem_is_listed() -> None:
    found = problems(
        b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0.x\nSummary: a\nSummary: b\n"
        b"Requires-Dist: foo >=\nDescription-Content-Type: text/foo\n"
    )
    assert len(found) == 4, found
    assert found[0].startswith("version: '1.0.x' is not a valid version")
    assert "summary: has invalid data (given more than once, or not valid UTF-8 text)" in found
    assert any(p.startswith("requires-dist: 'foo >=' is invalid") for p in found)
    assert any(p.startswith("description-content-type:") for p in found)


def test_check_matches_filename() -> None:
    meta = parse_core_metadata(b"Metadata-Version: 2.1\nName: Demo.Thing\nVersion: 1.0.0\n")
    check_matches_filename(meta, parse_dist_filename("demo_thing-1.0.tar.gz"))
    with pytest.raises(InvalidUpload) as caught:
        check_matches_filename(meta, parse_dist_filename("other-2.0-py3-none-any.whl"))
    assert caught.value.problems == [
        "name: the metadata says 'Demo.Thing' but the filename"
        " 'other-2.0-py3-none-any.whl' says 'other'",
        "version: the metadata says '1.0.0' but the filename"
        " 'other-2.0-py3-none-any.whl' says '2.0'",
    ]
