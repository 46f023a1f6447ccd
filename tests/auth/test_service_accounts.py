"""Service accounts: `packhouse user add ci --service` and `POST /api/v1/users` with
`"service": true` make a user with no password, who cannot sign in with any password and
acts only through its tokens."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from packhouse.errors import InvalidInput
from packhouse.services import accounts
from packhouse.services.repos import create_repository
from packhouse.types import Format
from packhouse.web.app import create_app
from packhouse.wiring import Services
from tests.auth.test_cli_accounts import cli

ROOT = ("root", "root-password")


def test_the_cli_adds_a_service_account_that_only_holds_tokens(tmp_path: Path) -> None:
    out = cli(tmp_path, "user", "add", "ci", "--service")  # no password asked, none on stdin
    assert "added service account ci" in out
    assert "packhouse token create --user ci" in out
    listed = cli(tmp_path, "user", "list")
    (row,) = [line for line in listed.splitlines() if " ci " in line]
    assert "service" in row
    refused = cli(tmp_path, "user", "passwd", "ci", input="a-new-password\n", code=1)
    assert "'ci' is a service account" in refused
    assert "packhouse token create --user ci" in refused
    cli(tmp_path, "repo", "create", "team")
    cli(tmp_path, "repo", "grant", "pypi/team", "ci", "upload")
    made = cli(
        tmp_path, "token", "create", "--user", "ci", "--repo", "pypi/team", "--scope", "upload"
    )
    assert made.strip().splitlines()[-1].startswith("ph-")
    journal = cli(tmp_path, "journal", "--action", "user.create", "--json")
    assert '"service": true' in journal


def test_a_user_without_a_password_is_refused_with_the_service_hint(
    memory_services: Services,
) -> None:
    with pytest.raises(InvalidInput, match="packhouse user add bot --service"):
        accounts.create_user(memory_services.ctx, actor="t", name="bot", password=None, admin=False)
    with pytest.raises(InvalidInput, match="has no password"):
        accounts.create_user(
            memory_services.ctx, actor="t", name="bot", password="x" * 12, admin=False, service=True
        )


@pytest.fixture
def client(memory_services: Services) -> Iterator[TestClient]:
    svc = memory_services
    accounts.create_user(svc.ctx, actor="t", name="root", password=ROOT[1], admin=True)
    create_repository(svc.ctx, actor="t", name="main", fmt=Format.PYPI)
    with TestClient(create_app(svc.ctx.settings, svc)) as test_client:
        yield test_client


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_the_api_makes_a_service_account_that_cannot_sign_in(client: TestClient) -> None:
    made = client.post("/api/v1/users", json={"name": "ci", "service": True}, auth=ROOT)
    assert made.status_code == 201, made.text
    assert made.json()["service"] is True
    assert client.get("/api/v1/users/root", auth=ROOT).json()["service"] is False
    both = client.post(
        "/api/v1/users", json={"name": "ci2", "service": True, "password": "pw-123456"}, auth=ROOT
    )
    assert both.status_code == 400
    assert "has no password" in both.json()["detail"]
    neither = client.post("/api/v1/users", json={"name": "ci3"}, auth=ROOT)
    assert neither.status_code == 400
    assert "--service" in neither.json()["detail"]
    # no password opens it: not an empty one, not a guess
    for password in ("", "ci", "None"):
        denied = client.get("/api/v1/me", headers=_basic("ci", password))
        assert denied.status_code == 401, password
    set_one = client.patch("/api/v1/users/ci", json={"password": "now-a-password"}, auth=ROOT)
    assert set_one.status_code == 400
    assert "service account" in set_one.json()["detail"]
    granted = client.put(
        "/api/v1/repositories/pypi/main/permissions",
        json={"principal": "ci", "action": "upload"},
        auth=ROOT,
    )
    assert granted.status_code == 200, granted.text
    token = client.post(
        "/api/v1/tokens",
        json={"user": "ci", "repositories": ["pypi/main"], "actions": ["upload"]},
        auth=ROOT,
    )
    assert token.status_code == 201, token.text
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token.json()['secret']}"})
    assert me.status_code == 200
    assert me.json()["name"] == "ci"
