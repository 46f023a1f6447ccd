"""devpi's staging workflow against the real server: upload to `dev`, promote to `release`
with the CLI and with the API, and install the promoted release with pip from `release`."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import make_wheel
from tests.conftest import (
    CLIENT_ENV,
    RunningServer,
    make_venv,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """`dev` holds stage-pkg 1.0 and 2.0; `release` is empty; carol may read dev and
    upload to release, dave may only read dev."""
    running = start_server(tmp_path_factory.mktemp("staged") / "data")
    try:
        here = tmp_path_factory.mktemp("wheels")
        for name in ("dev", "release"):
            running.run_cli("repo", "create", name)
        for user in ("carol", "dave"):
            running.run_cli("user", "add", user, input=f"{user}-password-1\n")
            running.run_cli("repo", "grant", "dev", user, "read")
        running.run_cli("repo", "grant", "release", "carol", "upload")
        with running.client() as client:
            for version in ("1.0", "2.0"):
                wheel = make_wheel(here, "stage-pkg", version)
                form = {":action": "file_upload", "name": "stage-pkg", "version": version}
                with wheel.open("rb") as f:
                    sent = client.post("/pypi/dev/", data=form, files={"content": (wheel.name, f)})
                assert sent.status_code == 200, sent.text
    except BaseException:
        stop_server(running)
        raise
    yield running
    stop_server(running)


def test_the_cli_promotes_and_pip_installs_from_the_target(
    staged: RunningServer, tmp_path: Path
) -> None:
    done = staged.run_cli("promote", "--from", "dev", "--to", "release", "stage-pkg", "1.0")
    assert "promoted stage_pkg-1.0-py3-none-any.whl" in done.stdout
    again = staged.run_cli("promote", "--from", "dev", "--to", "release", "Stage_Pkg", "1.0")
    assert "0 promoted" in again.stdout
    assert "1 already there" in again.stdout

    python = make_venv(tmp_path / "venv")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--index-url", staged.index_url("release"),
         "stage-pkg"],
        check=True, capture_output=True, env={**os.environ, **CLIENT_ENV}, timeout=300,
    )  # fmt: skip
    shown = subprocess.run(
        [str(python), "-c", "import stage_pkg; print(stage_pkg.VERSION)"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert shown.stdout.strip() == "1.0"  # 2.0 stays in dev
    journal = staged.run_cli("journal", "--repo", "release").stdout
    assert "promote" in journal


def test_the_api_promotes_for_whoever_may_read_the_source_and_upload_to_the_target(
    staged: RunningServer,
) -> None:
    body = {"to": "release", "name": "stage-pkg", "version": "2.0"}
    with staged.client(("dave", "dave-password-1")) as dave:
        refused = dave.post("/api/v1/repositories/pypi/dev/promote", json=body)
        assert refused.status_code == 403, refused.text
    with staged.client(("carol", "carol-password-1")) as carol:
        made = carol.post("/api/v1/repositories/pypi/dev/promote", json=body)
        assert made.status_code == 201, made.text
        assert [f["filename"] for f in made.json()["copied"]] == ["stage_pkg-2.0-py3-none-any.whl"]
        same = carol.post("/api/v1/repositories/pypi/dev/promote", json=body)
        assert same.status_code == 200
        assert same.json()["copied"] == []
        missing = carol.post(
            "/api/v1/repositories/pypi/dev/promote", json={**body, "version": "9.9"}
        )
        assert missing.status_code == 404
        assert "nothing to promote" in missing.json()["detail"]
        page = carol.get("/pypi/release/simple/stage-pkg/", headers={"Accept": "text/html"})
        assert "stage_pkg-2.0-py3-none-any.whl" in page.text
