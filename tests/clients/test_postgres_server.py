"""The real server on the real PostgreSQL: upload, install, and a CLI change from another
process that the server's next response reflects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import make_wheel
from tests.clients.test_pypi_clients import pip_install, run, twine_upload
from tests.conftest import RunningServer, make_venv, start_server, stop_server

pytestmark = [pytest.mark.clients, pytest.mark.postgres]


@pytest.fixture
def pg_server(tmp_path: Path, postgres_url: str) -> Iterator[RunningServer]:
    running = start_server(tmp_path / "data", {"PACKHOUSE_DATABASE_URL": postgres_url})
    yield running
    stop_server(running)


def test_upload_install_and_yank_on_postgres(pg_server: RunningServer, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    twine_upload(
        pg_server, make_wheel(dist, "ph-pg-base", "1.0"), make_wheel(dist, "ph-pg-base", "1.1")
    )
    twine_upload(pg_server, make_wheel(dist, "ph-pg-app", "1.0", requires=["ph-pg-base"]))
    pg_server.run_cli("yank", "main", "ph-pg-base", "1.1", "--reason", "bad")

    python = make_venv(tmp_path / "venv")
    pip_install(pg_server, python, "ph-pg-app")
    versions = run(
        python, "-c", "import ph_pg_app, ph_pg_base; print(ph_pg_app.VERSION, ph_pg_base.VERSION)"
    ).stdout.split()
    assert versions == ["1.0", "1.0"]  # 1.1 of the dependency is yanked
