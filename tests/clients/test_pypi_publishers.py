"""hatch, pdm and poetry publish to Packhouse as they would to PyPI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.builders import make_sdist, make_wheel
from tests.conftest import CLIENT_ENV, VENV_BIN, RunningServer, simple_files

pytestmark = pytest.mark.clients


def project(tmp_path: Path, name: str) -> Path:
    """A project directory with a pyproject and its built dist/."""
    root = tmp_path / name
    (root / "dist").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "1.0"\n')
    make_wheel(root / "dist", name, "1.0")
    make_sdist(root / "dist", name, "1.0")
    return root


def publish(cwd: Path, *argv: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        [str(VENV_BIN / argv[0]), *argv[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            **CLIENT_ENV,
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "PDM_CHECK_UPDATE": "false",
            "PDM_HOME": str(cwd / ".pdm-home"),
            "HATCH_DATA_DIR": str(cwd / ".hatch"),
            "POETRY_CACHE_DIR": str(cwd / ".poetry-cache"),
            **(env or {}),
        },
    )
    assert result.returncode == 0, f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}"


def files_of(server: RunningServer, name: str) -> list[str]:
    with server.client() as client:
        return sorted(f["filename"] for f in simple_files(client, name))


def expected(name: str) -> list[str]:
    dist = name.replace("-", "_")
    return [f"{dist}-1.0-py3-none-any.whl", f"{dist}-1.0.tar.gz"]


def test_hatch_publish(server: RunningServer, tmp_path: Path) -> None:
    root = project(tmp_path, "ph-hatched")
    publish(
        root, "hatch", "publish", "--no-prompt", "-r", f"{server.url}/pypi/main/",
        "-u", "admin", "-a", server.admin_password, "dist/",
    )  # fmt: skip
    assert files_of(server, "ph-hatched") == expected("ph-hatched")


def test_pdm_publish(server: RunningServer, tmp_path: Path) -> None:
    root = project(tmp_path, "ph-pdmed")
    publish(
        root, "pdm", "publish", "--no-build", "-r", f"{server.url}/pypi/main/",
        "-u", "admin", "-P", server.admin_password,
    )  # fmt: skip
    assert files_of(server, "ph-pdmed") == expected("ph-pdmed")


def test_poetry_publish(server: RunningServer, tmp_path: Path) -> None:
    root = project(tmp_path, "ph-poetic")
    publish(
        root,
        "poetry",
        "publish",
        "-r",
        "packhouse",
        "--no-interaction",
        env={
            "POETRY_REPOSITORIES_PACKHOUSE_URL": f"{server.url}/pypi/main/",
            "POETRY_HTTP_BASIC_PACKHOUSE_USERNAME": "admin",
            "POETRY_HTTP_BASIC_PACKHOUSE_PASSWORD": server.admin_password,
        },
    )
    assert files_of(server, "ph-poetic") == expected("ph-poetic")
