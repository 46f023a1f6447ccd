from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from packhouse.errors import NotFound, ProjectNotFound
from packhouse.formats.pypi.archives import ArchiveLimits, read_metadata
from packhouse.formats.pypi.filenames import parse_dist_filename
from packhouse.formats.pypi.jsonapi import (
    JsonFile,
    JsonProject,
    JsonRelease,
    guess_packagetype,
    latest_release,
    project_json,
    release_json,
)
from packhouse.formats.pypi.metadata import CoreMetadata, parse_core_metadata

DATA = Path(__file__).parents[2] / "data" / "pypi"
WHEN = datetime(2023, 12, 31, 15, 58, 5, 795926, tzinfo=UTC)


def attrs_metadata() -> CoreMetadata:
    path = DATA / "attrs-23.2.0-py3-none-any.whl"
    return parse_core_metadata(read_metadata(path, parse_dist_filename(path.name), ArchiveLimits()))


def jfile(filename: str, *, yanked: bool = False, reason: str | None = None) -> JsonFile:
    return JsonFile(
        filename=filename,
        url=f"https://repo.example/files/x/{filename}",
        size=10,
        sha256="s" * 64,
        upload_time=WHEN,
        requires_python=">=3.7",
        md5="m" * 32,
        blake2b_256="b" * 64,
        yanked=yanked,
        yanked_reason=reason,
    )


def release(version: str, *, yanked: bool = False, files: int = 1) -> JsonRelease:
    made = [jfile(f"attrs-{version}-py3-none-any.whl", yanked=yanked) for _ in range(files)]
    return JsonRelease(version, made)


def project(*releases: JsonRelease) -> JsonProject:
    return JsonProject("attrs", releases, 9, "https://repo.example/ui/main/project/attrs/")


def load(data: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(data)
    return doc


@pytest.mark.parametrize(
    ("releases", "latest"),
    [
        ([release("1.0"), release("2.0"), release("3.0b1")], "2.0"),
        ([release("1.0"), release("2.0", yanked=True)], "1.0"),
        ([release("1.0", yanked=True), release("2.0a1")], "2.0a1"),
        ([release("1.0", yanked=True), release("2.0", yanked=True)], "2.0"),
        ([release("1.0"), release("5.0", files=0)], "1.0"),
        ([release("1.0", files=0), release("2.0", files=0)], "2.0"),
    ],
)
def test_latest_release(releases: list[JsonRelease], latest: str) -> None:
    chosen = latest_release(releases)
    assert chosen is not None
    assert chosen.version == latest


def test_project_json_shape() -> None:
    meta = attrs_metadata()
    current = JsonRelease("23.2.0", [jfile("attrs-23.2.0-py3-none-any.whl")], meta)
    doc = load(project_json(project(release("22.1.0"), current, release("23.1.0"))))
    assert set(doc) == {"info", "last_serial", "releases", "urls", "vulnerabilities"}
    assert doc["last_serial"] == 9
    assert doc["vulnerabilities"] == []
    assert list(doc["releases"]) == ["22.1.0", "23.1.0", "23.2.0"]
    info = doc["info"]
    assert info["name"] == "attrs"
    assert info["version"] == "23.2.0"
    assert info["license_expression"] == "MIT"
    assert info["license_files"] == ["LICENSE"]
    assert info["requires_python"] == ">=3.7"
    assert info["description_content_type"] == "text/markdown"
    assert (
        info["project_url"] == info["package_url"] == "https://repo.example/ui/main/project/attrs/"
    )
    assert info["release_url"] == "https://repo.example/ui/main/project/attrs/23.2.0/"
    assert info["yanked"] is False
    assert info["yanked_reason"] is None
    assert info["project_urls"]["GitHub"] == "https://github.com/python-attrs/attrs"
    assert "tests" in info["provides_extra"]
    assert info["requires_dist"]
    for key in (
        "author",
        "author_email",
        "classifiers",
        "description",
        "home_page",
        "keywords",
        "license",
        "maintainer",
        "summary",
        "dynamic",
    ):
        assert key in info
    (url,) = doc["urls"]
    assert url == {
        "comment_text": "",
        "digests": {"blake2b_256": "b" * 64, "md5": "m" * 32, "sha256": "s" * 64},
        "downloads": -1,
        "filename": "attrs-23.2.0-py3-none-any.whl",
        "has_sig": False,
        "md5_digest": "m" * 32,
        "packagetype": "bdist_wheel",
        "python_version": "py3",
        "requires_python": ">=3.7",
        "size": 10,
        "upload_time": "2023-12-31T15:58:05",
        "upload_time_iso_8601": "2023-12-31T15:58:05.795926Z",
        "url": "https://repo.example/files/x/attrs-23.2.0-py3-none-any.whl",
        "yanked": False,
        "yanked_reason": None,
    }


def test_release_json() -> None:
    yanked = JsonRelease(
        "1.0.0", [jfile("attrs-1.0.0.tar.gz", yanked=True, reason="bad build")], None
    )
    doc = load(release_json(project(yanked, release("2.0")), "1.0"))
    assert "releases" not in doc
    assert doc["info"]["version"] == "1.0.0"
    assert doc["info"]["yanked"] is True
    assert doc["info"]["yanked_reason"] == "bad build"
    assert doc["info"]["summary"] is None  # no metadata known for this release
    (url,) = doc["urls"]
    assert (url["packagetype"], url["python_version"]) == ("sdist", "source")
    assert (url["yanked"], url["yanked_reason"]) == (True, "bad build")


def test_unknown_release() -> None:
    with pytest.raises(NotFound) as caught:
        release_json(project(release("1.0")), "9.9")
    assert str(caught.value) == "project 'attrs' has no release '9.9'"


def test_project_without_releases() -> None:
    with pytest.raises(ProjectNotFound) as caught:
        project_json(project())
    assert str(caught.value) == "project 'attrs' has no releases"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("six-1.16.0-py2.py3-none-any.whl", ("bdist_wheel", "py2.py3")),
        ("six-1.16.0.tar.gz", ("sdist", "source")),
        ("six-1.16.0.zip", ("sdist", "source")),
        ("six-1.0-py2.7.egg", ("bdist_egg", "py2.7")),
        ("six-1.0.win32.exe", ("bdist_wininst", "any")),
        ("whatever.bin", ("unknown", "any")),
    ],
)
def test_guess_packagetype(filename: str, expected: tuple[str, str]) -> None:
    assert guess_packagetype(filename) == expected
