"""`packhouse upload` and `packhouse conda patch` never echo a password or token of --url."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from packhouse.auth.tokens import new_secret
from packhouse.cli.main import app
from tests.builders import make_wheel

runner = CliRunner()
PASSWORD = "hunter2-Secret-pw"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    return make_wheel(tmp_path, "quiet-thing", "1.0")


def test_unreachable_server_errors_hide_the_urls_secrets(wheel: Path) -> None:
    port = closed_port()
    token = new_secret().secret
    for url, secret in (
        (f"http://alice:{PASSWORD}@127.0.0.1:{port}", PASSWORD),
        (f"http://127.0.0.1:{port}/t/{token}", token),
    ):
        result = runner.invoke(app, ["upload", "--repo", "main", "--url", url, str(wheel)])
        assert result.exit_code == 1, result.output
        assert "cannot reach the server at http://" in result.output
        assert "***" in result.output
        assert secret not in result.output


def test_an_invalid_url_is_refused_without_its_password(wheel: Path) -> None:
    url = f"http://alice:{PASSWORD}@127.0.0.1:port"
    result = runner.invoke(app, ["upload", "--repo", "main", "--url", url, str(wheel)])
    assert result.exit_code == 2, result.output
    assert "is not a valid URL" in result.output
    assert PASSWORD not in result.output


def test_conda_patch_hides_the_urls_secrets(tmp_path: Path) -> None:
    instructions = tmp_path / "patch_instructions.json"
    instructions.write_text('{"patch_instructions_version": 1, "packages": {}, "remove": []}')
    url = f"http://alice:{PASSWORD}@127.0.0.1:{closed_port()}"
    result = runner.invoke(
        app,
        ["conda", "patch", "--repo", "main", "--subdir", "noarch", "--url", url,
         str(instructions)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "cannot reach the server" in result.output
    assert PASSWORD not in result.output
