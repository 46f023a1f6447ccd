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
