"""PyPI upload rules a client sees, against the real server process: one sdist per release
(versions compared as PEP 440 versions), PEP 625 sdist names, repeated form fields, digest
fields that are not hex. Each refusal is a 400 naming what was wrong, and stores nothing."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import httpx
import pytest
import requests

from tests.builders import make_sdist, make_wheel, metadata_text
from tests.conftest import ADMIN_PASSWORD, VENV_BIN, RunningServer
from tests.web.test_pypi_upload_errors import multipart

AUTH = ("admin", ADMIN_PASSWORD)
FORM = {":action": "file_upload", "protocol_version": "1", "filetype": "sdist"}


def twine(server: RunningServer, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(VENV_BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar",
            "--verbose", "--repository-url", f"{server.url}/pypi/main/", "-u", "admin",
            "-p", ADMIN_PASSWORD, *map(str, files),
        ],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "1000"},
    )  # fmt: skip


def zip_sdist(directory: Path, name: str, version: str, filename: str | None = None) -> Path:
    top = f"{name.replace('-', '_')}-{version}"
    path = directory / (filename or f"{top}.zip")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{top}/PKG-INFO", metadata_text(name, version))
        zf.writestr(f"{top}/setup.py", "from setuptools import setup\nsetup()\n")
    return path


def json_api(server: RunningServer, project: str) -> dict[str, object]:
    response = httpx.get(f"{server.url}/pypi/main/pypi/{project}/json", auth=AUTH)
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


def simple_filenames(server: RunningServer, project: str) -> list[str]:
    response = httpx.get(
        f"{server.url}/pypi/main/simple/{project}/",
        auth=AUTH,
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    if response.status_code == 404:
        return []
    return sorted(f["filename"] for f in response.json()["files"])


@pytest.mark.parametrize(
    ("second", "release_text"),
    [("1.0.0.tar.gz", "1.0.0"), ("1.0.zip", "1.0")],
)
def test_a_release_has_one_sdist_whatever_its_version_is_written(
    server: RunningServer, tmp_path: Path, second: str, release_text: str
) -> None:
    project = f"ph-one-sdist-{second.replace('.', '-')}"
    dist = project.replace("-", "_")
    first = make_sdist(tmp_path, project, "1.0")
    assert twine(server, first).returncode == 0
    if second.endswith(".zip"):
        other = zip_sdist(tmp_path, project, release_text)
    else:
        other = make_sdist(tmp_path, project, release_text)
    assert other.name == f"{dist}-{second}"
    refused = twine(server, other)
    out = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0, out
    assert "400" in out, out
    assert "only one" in out, out
    assert f"{dist}-1.0.tar.gz" in out, out  # names the sdist that is there
    assert simple_filenames(server, project) == [f"{dist}-1.0.tar.gz"]
    assert list(json_api(server, project)["releases"]) == ["1.0"]  # type: ignore[arg-type]


def test_a_wheel_of_an_equal_version_joins_the_release_as_first_written(
    server: RunningServer, tmp_path: Path
) -> None:
    project = "ph-equal-versions"
    assert twine(server, make_sdist(tmp_path, project, "1.0")).returncode == 0
    wheel = make_wheel(tmp_path, project, "1.0.0")
    assert twine(server, wheel).returncode == 0
    data = json_api(server, project)
    releases = data["releases"]
    assert isinstance(releases, dict)
    assert list(releases) == ["1.0"], releases
    assert sorted(f["filename"] for f in releases["1.0"]) == [
        "ph_equal_versions-1.0.0-py3-none-any.whl",
        "ph_equal_versions-1.0.tar.gz",
    ]
    page = httpx.get(
        f"{server.url}/pypi/main/simple/{project}/",
        auth=AUTH,
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    ).json()
    assert page["versions"] == ["1.0"]
    # a later sdist for the same release, written 1.0.0.0, is the second sdist
    late = make_sdist(tmp_path, project, "1.0.0.0")
    assert twine(server, late).returncode != 0
    assert len(simple_filenames(server, project)) == 2


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("Legacy.Name-1.0.tar.gz", "legacy_name-1.0.tar.gz"),
        ("legacy-name-1.0.tar.gz", "legacy_name-1.0.tar.gz"),
        ("Legacy_Name-1.0.zip", "legacy_name-1.0.zip"),
        ("legacy_name-1.0RC1.tar.gz", "legacy_name-1.0rc1.tar.gz"),
    ],
)
def test_legacy_sdist_names_are_refused(
    server: RunningServer, tmp_path: Path, filename: str, expected: str
) -> None:
    version = "1.0rc1" if "RC1" in filename else "1.0"
    if filename.endswith(".zip"):
        legacy = zip_sdist(tmp_path, "Legacy.Name", version, filename)
    else:
        legacy = make_sdist(tmp_path, "Legacy.Name", version).rename(tmp_path / filename)
    refused = twine(server, legacy)
    out = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0
    assert "400" in out, out
    assert "PEP 625" in out, out
    assert expected in out, out
    assert simple_filenames(server, "legacy-name") == []


def post_raw(server: RunningServer, parts: list[tuple[str, str]], wheel: Path) -> httpx.Response:
    """A form whose fields are sent in order, repeats included."""
    import uuid

    boundary = uuid.uuid4().hex
    body = b""
    for key, value in parts:
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{wheel.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    body += wheel.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return httpx.post(
        f"{server.url}/pypi/main/",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        auth=AUTH,
        timeout=60,
    )


@pytest.mark.parametrize(
    "repeated",
    [
        [("name", "ph-dup-fields"), ("name", "ph-other")],
        [("name", "ph-other"), ("name", "ph-dup-fields")],
        [("version", "1.0"), ("version", "2.0")],
        [(":action", "file_upload"), (":action", "remove_pkg")],
        [("sha256_digest", "00" * 32), ("sha256_digest", "11" * 32)],
        [("filetype", "bdist_wheel"), ("filetype", "sdist")],
    ],
    ids=["name", "name-reversed", "version", "action", "sha256", "filetype"],
)
def test_a_single_valued_field_sent_twice_is_refused(
    server: RunningServer, tmp_path: Path, repeated: list[tuple[str, str]]
) -> None:
    wheel = make_wheel(tmp_path, "ph-dup-fields", "1.0")
    base = {":action": "file_upload", "name": "ph-dup-fields", "version": "1.0"}
    twice = {key for key, _ in repeated}
    parts = [(k, v) for k, v in base.items() if k not in twice] + repeated
    response = post_raw(server, parts, wheel)
    assert response.status_code == 400, response.text
    (field,) = twice
    assert f"the form has the field {field!r} more than once" in response.text
    assert simple_filenames(server, "ph-dup-fields") == []


def test_list_fields_may_repeat(server: RunningServer, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "ph-list-fields", "1.0")
    parts = [
        (":action", "file_upload"),
        ("name", "ph-list-fields"),
        ("version", "1.0"),
        ("classifiers", "Programming Language :: Python :: 3"),
        ("classifiers", "License :: OSI Approved :: MIT License"),
        ("requires_dist", "idna"),
        ("requires_dist", "six"),
        ("project_urls", "Home, https://example.org"),
        ("project_urls", "Docs, https://example.org/docs"),
    ]
    response = post_raw(server, parts, wheel)
    assert response.status_code == 200, response.text
    assert simple_filenames(server, "ph-list-fields") == [wheel.name]


@pytest.mark.parametrize("field", ["sha256_digest", "md5_digest", "blake2_256_digest"])
@pytest.mark.parametrize("value", ["é" * 64, "ab" * 31 + "\u0663\u0664"])
def test_a_digest_that_is_not_hex_is_a_400(
    server: RunningServer, tmp_path: Path, field: str, value: str
) -> None:
    wheel = make_wheel(tmp_path, "ph-bad-digest", "1.0")
    fields = {":action": "file_upload", "name": "ph-bad-digest", "version": "1.0", field: value}
    body, content_type = multipart(fields, wheel.name, wheel.read_bytes())
    # requests, as twine sends it: the field's bytes as UTF-8
    response = requests.post(
        f"{server.url}/pypi/main/",
        data=body,
        headers={"Content-Type": content_type},
        auth=AUTH,
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert f"the {field} sent is not a hexadecimal digest" in response.text
    assert simple_filenames(server, "ph-bad-digest") == []
