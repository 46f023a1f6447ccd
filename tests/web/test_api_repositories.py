"""Creating proxies and changing repository settings through /api/v1 (in-process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from packhouse.services import accounts
from packhouse.services.repos import create_repository, set_permission
from packhouse.types import Action, Format
from packhouse.web.app import create_app
from packhouse.wiring import Services

ROOT = ("root", "root-password")
ALICE = ("alice", "alice-password")
UPSTREAM = "https://pypi.example.test/simple/"


@pytest.fixture
def client(memory_services: Services) -> Iterator[TestClient]:
    svc = memory_services
    accounts.create_user(svc.ctx, actor="t", name="root", password=ROOT[1], admin=True)
    accounts.create_user(svc.ctx, actor="t", name="alice", password=ALICE[1], admin=False)
    create_repository(svc.ctx, actor="t", name="main", fmt=Format.PYPI)
    create_repository(svc.ctx, actor="t", name="team", fmt=Format.PYPI)
    set_permission(
        svc.ctx, actor="t", fmt=Format.PYPI, name="team", principal="alice", action=Action.ADMIN
    )
    with TestClient(create_app(svc.ctx.settings, svc)) as test_client:
        yield test_client


def test_an_administrator_creates_a_proxy_whose_secret_is_never_returned(
    client: TestClient,
) -> None:
    body = {
        "name": "pypi-org",
        "kind": "proxy",
        "upstream_url": UPSTREAM,
        "upstream_user": "mirror",
        "upstream_password": "very-secret-upstream-token",
        "ttl": 120,
        "min_age": 3 * 86400,
        "cooldown_exempt": ["Certifi"],
    }
    created = client.post("/api/v1/repositories", json=body, auth=ROOT)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["kind"] == "proxy"
    assert out["upstream"] == {"user": "mirror", "has_secret": True, "ttl": 120, "offline": False}
    assert out["cooldown"] == {"min_age": 259200, "exclude_newer": None, "exempt": ["certifi"]}
    for path in ("/api/v1/repositories", "/api/v1/repositories/pypi/pypi-org", "/api/v1/journal"):
        assert "very-secret" not in client.get(path, auth=ROOT).text


def test_a_group_is_made_and_changed_with_patch(client: TestClient) -> None:
    client.post(
        "/api/v1/repositories",
        json={"name": "pypi-org", "kind": "proxy", "upstream_url": UPSTREAM},
        auth=ROOT,
    )
    made = client.post(
        "/api/v1/repositories", json={"name": "all", "bases": ["main", "pypi-org"]}, auth=ROOT
    )
    assert made.status_code == 201, made.text
    changed = client.patch(
        "/api/v1/repositories/pypi/all",
        json={"allow_upstream": ["Acme_Core"], "exclude_newer": "2026-06-30T00:00:00"},
        auth=ROOT,
    )
    assert changed.status_code == 200, changed.text
    out = changed.json()
    assert out["bases"] == ["main", "pypi-org"]
    assert out["allow_upstream"] == ["acme-core"]
    assert out["cooldown"]["exclude_newer"].startswith("2026-06-30T00:00:00")
    cleared = client.patch(
        "/api/v1/repositories/pypi/all", json={"clear": ["exclude_newer"]}, auth=ROOT
    )
    assert cleared.json()["cooldown"] is None


def test_bad_settings_are_refused_with_the_reason_and_change_nothing(client: TestClient) -> None:
    cases = [
        ({"name": "x", "kind": "proxy"}, 400, "needs an upstream URL"),
        ({"name": "x", "kind": "proxy", "upstream_url": "file:///etc/"}, 400, "https://"),
        ({"name": "x", "upstream_url": UPSTREAM}, 400, "only a proxy"),
        ({"name": "x", "kind": "proxy", "upstream_url": UPSTREAM, "ttl": -1}, 422, "ttl"),
        ({"name": "x", "kind": "mirror", "upstream_url": UPSTREAM}, 422, "kind"),
        ({"name": "x", "bases": ["nope"]}, 404, "nope"),
    ]
    for body, status, reason in cases:
        response = client.post("/api/v1/repositories", json=body, auth=ROOT)
        assert response.status_code == status, (body, response.text)
        assert reason in response.text, (body, response.text)
    names = [r["name"] for r in client.get("/api/v1/repositories", auth=ROOT).json()]
    assert "x" not in names
    for body, status, reason in [
        ({"ttl": 10}, 400, "not a proxy"),
        ({"bases": ["main", "team", "main"]}, 400, ""),
        ({}, 400, "nothing to change"),
        ({"clear": ["everything"]}, 422, "clear"),
        ({"min_age": 0}, 400, "more than 0"),
    ]:
        response = client.patch("/api/v1/repositories/pypi/team", json=body, auth=ROOT)
        assert response.status_code == status, (body, response.text)
        assert reason in response.text


def test_repository_admins_change_settings_but_not_the_upstream(client: TestClient) -> None:
    ok = client.patch(
        "/api/v1/repositories/pypi/team", json={"bases": ["main"], "min_age": 3600}, auth=ALICE
    )
    assert ok.status_code == 200, ok.text
    assert (
        client.patch(
            "/api/v1/repositories/pypi/main", json={"min_age": 3600}, auth=ALICE
        ).status_code
        == 403
    )
    assert (
        client.patch(
            "/api/v1/repositories/pypi/team", json={"upstream_url": UPSTREAM}, auth=ALICE
        ).status_code
        == 403
    )
    assert client.patch("/api/v1/repositories/pypi/team", json={"min_age": 1}).status_code == 401
