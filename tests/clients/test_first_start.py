"""What a first `packhouse serve` prints: Packhouse's own words, not granian's bare warning."""

from __future__ import annotations

import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.clients


def test_start_up_output_explains_granians_embedded_mode_in_one_line(
    server: RunningServer,
) -> None:
    log = server.log_text()
    assert "[INFO] Starting granian (embedded)" in log  # granian did start and log
    assert "Embedded server is experimental!" not in log
    explained = [line for line in log.splitlines() if line.startswith("HTTP server: granian")]
    assert len(explained) == 1, log[:3000]
    assert "--server uvicorn" in explained[0]


def test_the_welcome_shows_how_a_pipeline_gets_its_token(server: RunningServer) -> None:
    log = server.log_text()
    for line in (
        "packhouse user add ci --service",
        "packhouse repo grant pypi/main ci upload",
        "packhouse token create --user ci --repo pypi/main --scope upload",
    ):
        assert line in log, log[:3000]
    # and those commands work as printed, on the server's data directory
    server.run_cli("user", "add", "ci", "--service")
    assert "pypi/main" in server.run_cli("repo", "grant", "pypi/main", "ci", "upload").stdout
    made = server.run_cli(
        "token", "create", "--user", "ci", "--repo", "pypi/main", "--scope", "upload"
    )
    assert made.stdout.strip().startswith("ph-")
