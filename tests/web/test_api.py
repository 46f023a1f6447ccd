"""The management API (/api/v1), in-process against the real app and in-memory stores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from packhouse.services import accounts
from packhouse.services.repos import create_repository
from packhouse.types import Format
from packhouse.web.app import create_app
from packhouse.wiring import Services

ROOT = ("root", "root-password")
ALICE = ("alice", "alice-password")


@pytest.fixture
def client(memory_services: Services) -> Iterator[TestClient]:
    svc = memory_services
    accounts.create_user(svc.ctx, actor="t", name="root", password=ROOT[1], admin=True)
    accounts.create_user(svc.ctx, actor="t", name="alice", password=ALICE[1], admin=False)
    create_repository(svc.ctx, actor="t", name="main", fmt=Format.PYPI)
    with TestClient(create_app(svc.ctx.settings, svc)) as test_client:
        yield test_client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def make_token(client: TestClient, auth: Any = ROOT, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/tokens", json=body, auth=auth)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_openapi_document_lists_the_areas(client: TestClient) -> None:
    doc = client.get("/api/v1/openapi.json").json()
    for path in (
        "/users",
        "/groups",
        "/tokens",
        "/repositories",
        "/repositories/{fmt}/{name}/permissions",
        "/journal",
    ):
        assert path in doc["paths"], path
    assert client.get("/api/v1/docs").status_code == 200


def test_anonymous_gets_401_json_with_www_authenticate(client: TestClient) -> None:
    response = client.get("/api/v1/users")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic realm=")
    assert response.json() == {"detail": "this needs an administrator's credentials"}
    assert response.headers["referrer-policy"] == "no-referrer"


def test_users_are_managed_by_administrators(client: TestClient) -> None:
    assert client.get("/api/v1/users", auth=ALICE).status_code == 403
    created = client.post(
        "/api/v1/users", json={"name": "bob", "password": "bob-password"}, auth=ROOT
    )
    assert created.status_code == 201
    assert created.json() == {
        "name": "bob",
        "admin": False,
        "disabled": False,
        "service": False,
        "groups": [],
    }
    again = client.post("/api/v1/users", json={"name": "bob", "password": "x"}, auth=ROOT)
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]
    bad = client.post("/api/v1/users", json={"name": ":x", "password": "x"}, auth=ROOT)
    assert bad.status_code == 400
    assert [u["name"] for u in client.get("/api/v1/users", auth=ROOT).json()] == [
        "alice",
        "bob",
        "root",
    ]
    # a user may see themselves and change their own password, nothing more
    assert client.get("/api/v1/users/alice", auth=ALICE).status_code == 200
    assert client.get("/api/v1/users/bob", auth=ALICE).status_code == 403
    assert client.patch("/api/v1/users/alice", json={"admin": True}, auth=ALICE).status_code == 403
    changed = client.patch("/api/v1/users/alice", json={"password": "new-pw"}, auth=ALICE)
    assert changed.status_code == 200
    assert client.get("/api/v1/me", auth=ALICE).status_code == 401
    assert client.get("/api/v1/me", auth=("alice", "new-pw")).json()["name"] == "alice"
    disabled = client.patch("/api/v1/users/bob", json={"disabled": True}, auth=ROOT)
    assert disabled.json()["disabled"] is True
    assert client.get("/api/v1/me", auth=("bob", "bob-password")).status_code == 401


def test_groups(client: TestClient) -> None:
    assert client.post("/api/v1/groups", json={"name": "devs"}, auth=ROOT).status_code == 201
    added = client.put("/api/v1/groups/devs/members/alice", auth=ROOT)
    assert added.json() == {"name": "devs", "members": ["alice"]}
    assert client.get("/api/v1/users/alice", auth=ROOT).json()["groups"] == ["devs"]
    assert client.get("/api/v1/me", auth=ALICE).json()["groups"] == ["devs"]
    missing = client.put("/api/v1/groups/devs/members/nobody", auth=ROOT)
    assert missing.status_code == 404
    assert "no user named 'nobody'" in missing.json()["detail"]
    removed = client.delete("/api/v1/groups/devs/members/alice", auth=ROOT)
    assert removed.json()["members"] == []
    assert client.delete("/api/v1/groups/devs", auth=ROOT).status_code == 204
    assert client.get("/api/v1/groups", auth=ROOT).json() == []


def test_tokens_secret_shown_once_and_usable(client: TestClient) -> None:
    made = make_token(client, name="ci", repositories=["main"], actions=["upload"], expires="30d")
    secret = made["secret"]
    assert secret.startswith("ph-")
    assert made["repositories"] == ["main"]
    assert made["actions"] == ["upload"]
    listed = client.get("/api/v1/tokens", auth=ROOT).json()
    assert [t["name"] for t in listed] == ["ci"]
    assert secret not in str(listed)
    me = client.get("/api/v1/me", headers=bearer(secret)).json()
    assert me["name"] == "root"
    assert me["token_actions"] == ["upload"]
    # a scoped token is not an administrator, and cannot make a wider token
    assert client.get("/api/v1/users", headers=bearer(secret)).status_code == 403
    wider = client.post("/api/v1/tokens", json={"actions": ["read"]}, headers=bearer(secret))
    assert wider.status_code == 403
    narrower = client.post(
        "/api/v1/tokens",
        json={"repositories": ["main"], "actions": ["read"], "expires": "1d"},
        headers=bearer(secret),
    )
    assert narrower.status_code == 201
    revoked = client.delete(f"/api/v1/tokens/{made['id']}", auth=ROOT)
    assert revoked.json()["revoked"] is True
    again = client.get("/api/v1/me", headers=bearer(secret))
    assert again.status_code == 401
    assert "revoked" in again.json()["detail"]


def test_users_make_their_own_tokens_within_their_rights(client: TestClient) -> None:
    refused = client.post(
        "/api/v1/tokens", json={"repositories": ["main"], "actions": ["read"]}, auth=ALICE
    )
    assert refused.status_code == 403
    assert "does not hold read on 'main'" in refused.json()["detail"]
    for_other = client.post("/api/v1/tokens", json={"user": "root"}, auth=ALICE)
    assert for_other.status_code == 403
    client.put(
        "/api/v1/repositories/pypi/main/permissions",
        json={"principal": "alice", "action": "read"},
        auth=ROOT,
    )
    mine = make_token(client, auth=ALICE, repositories=["main"])
    assert mine["user"] == "alice"
    assert client.get("/api/v1/tokens", params={"user": "root"}, auth=ALICE).status_code == 403
    assert client.delete("/api/v1/tokens/999", auth=ALICE).status_code == 404
    root_token = make_token(client)
    assert client.delete(f"/api/v1/tokens/{root_token['id']}", auth=ALICE).status_code == 403
    bad_expiry = client.post("/api/v1/tokens", json={"expires": "someday"}, auth=ROOT)
    assert bad_expiry.status_code == 400
    assert "30d" in bad_expiry.json()["detail"]


def test_repositories_and_permissions(client: TestClient) -> None:
    assert client.get("/api/v1/repositories").json() == []
    created = client.post(
        "/api/v1/repositories", json={"name": "open", "format": "conda", "public": True}, auth=ROOT
    )
    assert created.status_code == 201
    assert created.json()["public"] is True
    assert [r["name"] for r in client.get("/api/v1/repositories").json()] == ["open"]
    assert client.post("/api/v1/repositories", json={"name": "x"}, auth=ALICE).status_code == 403
    assert client.get("/api/v1/repositories/pypi/main").status_code == 401
    assert client.get("/api/v1/repositories/pypi/main", auth=ALICE).status_code == 403
    assert client.get("/api/v1/repositories/pypi/nope", auth=ROOT).status_code == 404
    assert client.get("/api/v1/repositories/pypi/main", auth=ROOT).json()["public"] is False
    granted = client.put(
        "/api/v1/repositories/pypi/main/permissions",
        json={"principal": "alice", "action": "admin"},
        auth=ROOT,
    )
    assert granted.json() == [{"principal": "alice", "kind": "user", "action": "admin"}]
    # alice administers main now: she may grant on it
    by_alice = client.put(
        "/api/v1/repositories/pypi/main/permissions",
        json={"principal": ":authenticated:", "action": "read"},
        auth=ALICE,
    )
    assert by_alice.status_code == 200
    assert {p["kind"] for p in by_alice.json()} == {"user", "special"}
    revoked = client.delete(
        "/api/v1/repositories/pypi/main/permissions/special/:authenticated:", auth=ALICE
    )
    assert len(revoked.json()) == 1
    unknown_user = client.put(
        "/api/v1/repositories/pypi/main/permissions",
        json={"principal": "nobody", "action": "read"},
        auth=ROOT,
    )
    assert unknown_user.status_code == 404


def test_journal_is_filterable(client: TestClient) -> None:
    make_token(client, name="one")
    client.post("/api/v1/groups", json={"name": "g"}, auth=ROOT)
    assert client.get("/api/v1/journal", auth=ALICE).status_code == 403
    everything = client.get("/api/v1/journal", auth=ROOT).json()
    serials = [e["serial"] for e in everything]
    assert serials == sorted(serials, reverse=True)
    tokens = client.get("/api/v1/journal", params={"action": "token.create"}, auth=ROOT).json()
    assert [e["detail"]["name"] for e in tokens] == ["one"]
    assert tokens[0]["actor"] == "root"
    by_repo = client.get("/api/v1/journal", params={"repository": "main"}, auth=ROOT).json()
    assert {e["action"] for e in by_repo} == {"repo.create"}
    since = client.get(
        "/api/v1/journal", params={"since": serials[1], "limit": 5}, auth=ROOT
    ).json()
    assert [e["serial"] for e in since] == [serials[0]]
    assert client.get("/api/v1/journal", params={"limit": 0}, auth=ROOT).status_code == 422
