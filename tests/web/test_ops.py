"""Operations endpoints and the request log, in-process."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from packhouse.web.accesslog import printable
from packhouse.web.app import create_app
from packhouse.wiring import Services


@pytest.fixture
def client(memory_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(memory_services.ctx.settings, memory_services)) as test_client:
        yield test_client


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ok"
    client.get("/pypi/nope/simple/")
    metrics = client.get("/metrics").text
    assert 'packhouse_http_requests_total{area="pypi",method="GET",status="4xx"} 1.0' in metrics
    assert "packhouse_http_request_seconds_bucket" in metrics
    assert "packhouse_journal_serial" in metrics
    assert "packhouse_page_cache_bytes" in metrics


def test_request_log_lines_cannot_be_forged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="packhouse.access"):
        client.get("/pypi/main/simple/x%0a2026-11-25 INFO packhouse.access: FORGED%00/")
    [line] = [r.getMessage() for r in caplog.records if r.name == "packhouse.access"]
    assert "\n" not in line
    assert "\x00" not in line
    assert "\\x0a2026-11-25" in line
    assert printable("a\rb\x7f") == "a\\x0db\\x7f"
