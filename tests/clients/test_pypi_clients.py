"""Real twine, uv and pip against the real server process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.builders import make_sdist, make_wheel
from tests.conftest import (
    CLIENT_ENV,
    VENV_BIN,
    RunningServer,
    file_path,
    make_venv,
    simple_files,
)

pytestmark = pytest.mark.clients


def run(*argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env={**os.environ, **CLIENT_ENV},
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result


def twine_upload(server: RunningServer, *files: Path, repo: str = "main") -> None:
    run(
        VENV_BIN / "twine", "upload", "--non-interactive", "--disable-progress-bar",
        "--repository-url", f"{server.url}/pypi/{repo}/",
        "-u", "admin", "-p", server.admin_password, *files,
    )  # fmt: skip


def pip_install(server: RunningServer, python: Path, *reqs: str) -> str:
    return run(python, "-m", "pip", "install", "--index-url", server.index_url(), *reqs).stdout


def installed_version(python: Path, module: str) -> str:
    return run(python, "-c", f"import {module}; print({module}.VERSION)").stdout.strip()


def test_twine_upload_then_pip_and_uv_install_with_dependencies(
    server: RunningServer, testdata_pypi: Path, tmp_path: Path
) -> None:
    real = sorted(p for p in testdata_pypi.iterdir() if not p.name.startswith("attrs"))
    twine_upload(server, *real)

    python = make_venv(tmp_path / "venv")
    out = pip_install(server, python, "jinja2")  # jinja2 depends on markupsafe, also uploaded
    assert "Successfully installed" in out
    versions = run(
        python, "-c", "import jinja2, markupsafe; print(jinja2.__version__, markupsafe.__version__)"
    ).stdout.split()
    assert versions == ["3.1.6", "3.0.4"]

    uv_target = make_venv(tmp_path / "uv-venv")
    run(
        VENV_BIN / "uv", "pip", "install", "--python", uv_target,
        "--index-url", server.index_url(), "click", "packaging==24.2", "colorama",
    )  # fmt: skip
    listed = run(VENV_BIN / "uv", "pip", "list", "--python", uv_target).stdout
    assert "click" in listed
    assert "24.2" in listed


def test_uv_publish_and_install_a_package_that_depends_on_another(
    server: RunningServer, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    make_wheel(dist, "ph-base", "1.0")
    make_wheel(dist, "ph-app", "2.0", requires=["ph-base>=1.0"])
    make_sdist(dist, "ph-app", "2.0", requires=["ph-base>=1.0"])
    run(
        VENV_BIN / "uv", "publish", "--publish-url", f"{server.url}/pypi/main/",
        "-u", "admin", "-p", server.admin_password, *sorted(dist.iterdir()),
    )  # fmt: skip

    python = make_venv(tmp_path / "venv")
    run(
        VENV_BIN / "uv", "pip", "install", "--python", python,
        "--index-url", server.index_url(), "ph-app",
    )  # fmt: skip
    assert installed_version(python, "ph_app") == "2.0"
    assert installed_version(python, "ph_base") == "1.0"


def test_yank_from_the_cli_while_serving_then_pip_skips_it_unless_pinned(
    server: RunningServer, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    twine_upload(server, make_wheel(dist, "ph-yanky", "1.0"), make_wheel(dist, "ph-yanky", "1.1"))
    server.run_cli("yank", "main", "ph-yanky", "1.1", "--reason", "broken build")

    with server.client() as client:
        files = simple_files(client, "ph-yanky")
    yanked = {f["filename"]: f["yanked"] for f in files}
    assert yanked == {
        "ph_yanky-1.0-py3-none-any.whl": False,
        "ph_yanky-1.1-py3-none-any.whl": "broken build",
    }

    python = make_venv(tmp_path / "venv")
    pip_install(server, python, "ph-yanky")
    assert installed_version(python, "ph_yanky") == "1.0"
    pip_install(server, python, "ph-yanky==1.1")
    assert installed_version(python, "ph_yanky") == "1.1"

    server.run_cli("unyank", "main", "ph-yanky", "1.1")
    with server.client() as client:
        html = client.get("/pypi/main/simple/ph-yanky/").text
    assert "data-yanked" not in html


def test_reupload_identical_is_a_no_op_and_different_bytes_are_refused(
    server: RunningServer, tmp_path: Path
) -> None:
    first = tmp_path / "first"
    second = tmp_path / "second"
    first.mkdir()
    second.mkdir()
    wheel = make_wheel(first, "ph-same", "1.0")
    twine_upload(server, wheel)
    twine_upload(server, wheel)  # identical: accepted, nothing changes
    other = make_wheel(second, "ph-same", "1.0", module_source="CHANGED = True\n")
    result = run(
        VENV_BIN / "twine", "upload", "--non-interactive", "--disable-progress-bar", "--verbose",
        "--repository-url", f"{server.url}/pypi/main/",
        "-u", "admin", "-p", server.admin_password, other, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "409" in result.stdout + result.stderr
    assert "already exists" in result.stdout + result.stderr

    server.run_cli("delete", "main", "ph-same", "1.0", "--yes")
    with server.client() as client:
        assert client.get("/pypi/main/simple/ph-same/").status_code == 404
        refused = client.post(
            "/pypi/main/",
            data={":action": "file_upload", "name": "ph-same", "version": "1.0"},
            files={"content": (wheel.name, wheel.read_bytes())},
        )
    assert refused.status_code == 409
    assert "deleted" in refused.text


def test_pip_checks_hashes_of_what_it_downloads(server: RunningServer, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = make_wheel(dist, "ph-hashed", "1.0")
    twine_upload(server, wheel)
    with server.client() as client:
        sha = simple_files(client, "ph-hashed")[0]["hashes"]["sha256"]
    blob = server.data / "blobs" / sha[:2] / sha[2:4] / sha
    blob.chmod(0o644)
    stored = bytearray(blob.read_bytes())
    stored[len(stored) // 2] ^= 0xFF  # corrupt the stored bytes
    blob.write_bytes(bytes(stored))

    python = make_venv(tmp_path / "venv")
    result = run(
        python, "-m", "pip", "install", "--no-cache-dir", "--index-url", server.index_url(),
        "ph-hashed", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "HASHES" in result.stderr.upper()


def test_metadata_2_4_wheel_is_accepted_from_a_plain_multipart_post(
    server: RunningServer, testdata_pypi: Path
) -> None:
    attrs = testdata_pypi / "attrs-23.2.0-py3-none-any.whl"
    with server.client() as client:
        response = client.post(
            "/pypi/main/",
            data={":action": "file_upload", "name": "attrs", "version": "23.2.0"},
            files={"content": (attrs.name, attrs.read_bytes())},
        )
        assert response.status_code == 200, response.text
        info = client.get("/pypi/main/pypi/attrs/json").json()["info"]
        metadata = client.get(file_path(simple_files(client, "attrs")[0]) + ".metadata")
    assert info["version"] == "23.2.0"
    assert info["license_expression"] == "MIT"
    assert info["requires_python"] == ">=3.7"
    assert metadata.status_code == 200
    assert b"Name: attrs" in metadata.content


def test_files_support_range_head_etag_and_immutable_caching(
    server: RunningServer, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = make_wheel(dist, "ph-ranged", "1.0")
    twine_upload(server, wheel)
    with server.client() as client:
        [listed] = simple_files(client, "ph-ranged")
        url = file_path(listed)
        full = client.get(url)
        head = client.head(url)
        part = client.get(url, headers={"Range": "bytes=0-9"})
        again = client.get(url, headers={"If-None-Match": full.headers["etag"]})
        anonymous = httpx.get(server.url + url)
    data = wheel.read_bytes()
    assert full.content == data
    assert full.headers["content-type"] == "application/zip"
    assert "immutable" in full.headers["cache-control"]
    assert full.headers["etag"] == f'"{listed["hashes"]["sha256"]}"'
    assert head.headers["content-length"] == str(len(data))
    assert head.content == b""
    assert part.status_code == 206
    assert part.content == data[:10]
    assert again.status_code == 304
    assert anonymous.status_code == 401
