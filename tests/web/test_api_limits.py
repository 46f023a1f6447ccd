"""Hostile input to the management API and the routes is refused with 4xx, never a 500:
non-ASCII Basic credentials, huge numbers, over-long names; and a token cannot mint a
token that outlives it nor manage tokens beyond its reach."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from packhouse.services import accounts
from packhouse.services.repos import create_repository, set_permission
from packhouse.types import Action, Format
from packhouse.web.app import create_app
from packhouse.wiring import Services

ROOT = ("root", "root-password")
ALICE = ("alice", "alice-password")
HUGE = "9" * 23
LONG = "x" * 5000


@pytest.fixture
def client(memory_services: Services) -> Iterator[TestClient]:
    svc = memory_services
    accounts.create_user(svc.ctx, actor="t", name="root", password=ROOT[1], admin=True)
    accounts.create_user(svc.ctx, actor="t", name="alice", password=ALICE[1], admin=False)
    for name in ("main", "other"):
        create_repository(svc.ctx, actor="t", name=name, fmt=Format.PYPI)
        set_permission(
            svc.ctx, actor="t", fmt=Format.PYPI, name=name, principal="alice", action=Action.ADMIN
        )
    with TestClient(create_app(svc.ctx.settings, svc), raise_server_exceptions=False) as c:
        yield c


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def make_token(client: TestClient, auth: Any = ALICE, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/tokens", json=body, auth=auth)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/users", "/pypi/main/simple/"])
def test_non_ascii_basic_credentials_get_401(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Authorization": "Basic é☃".encode()})
    assert response.status_code == 401, response.text
    assert "not valid base64" in response.text


@pytest.mark.parametrize("expires", ["999999999d", "9999999999999w", "9999-12-31", "3651d", LONG])
def test_token_expiry_beyond_ten_years_is_refused_with_400(
    client: TestClient, expires: str
) -> None:
    response = client.post("/api/v1/tokens", json={"expires": expires}, auth=ALICE)
    assert response.status_code in (400, 422), response.text
    if response.status_code == 400:
        assert "at most" in response.json()["detail"] or "cannot read" in response.json()["detail"]


def test_ten_years_is_accepted(client: TestClient) -> None:
    assert make_token(client, expires="3650d")["expires_at"] is not None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/v1/tokens/{HUGE}"),
        ("DELETE", f"/api/v1/tokens/{HUGE}"),
        ("GET", "/api/v1/tokens/0"),
        ("GET", "/api/v1/tokens/-1"),
        ("GET", f"/api/v1/journal?since={HUGE}"),
        ("GET", f"/api/v1/journal?limit={HUGE}"),
        ("GET", f"/api/v1/users/{LONG}"),
        ("GET", f"/api/v1/groups/{LONG}"),
        ("GET", f"/api/v1/journal?actor={LONG}"),
        ("GET", f"/api/v1/tokens?user={LONG}"),
        ("GET", f"/api/v1/repositories/pypi/{LONG}"),
        ("DELETE", f"/api/v1/repositories/pypi/main/permissions/user/{LONG}"),
        ("PUT", f"/api/v1/groups/g/members/{LONG}"),
    ],
)
def test_unbounded_numbers_and_names_are_refused_not_500(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path, auth=ROOT)
    assert response.status_code == 422, response.text


def test_the_largest_id_is_a_plain_404(client: TestClient) -> None:
    response = client.get(f"/api/v1/tokens/{2**63 - 1}", auth=ROOT)
    assert response.status_code == 404
    assert "there is no token" in response.json()["detail"]


def test_names_in_bodies_are_bounded(client: TestClient) -> None:
    for path, body in (
        ("/api/v1/users", {"name": LONG, "password": "pw"}),
        ("/api/v1/groups", {"name": LONG}),
        ("/api/v1/repositories", {"name": LONG}),
        ("/api/v1/repositories", {"name": "r", "description": LONG * 10}),
        ("/api/v1/repositories", {"name": "r", "bases": ["main"] * 1000}),
        ("/api/v1/repositories/pypi/main/permissions", {"principal": LONG, "action": "read"}),
    ):
        method = "PUT" if path.endswith("permissions") else "POST"
        response = client.request(method, path, json=body, auth=ROOT)
        assert response.status_code == 422, (path, response.text)


def test_token_bodies_are_bounded(client: TestClient) -> None:
    for body in (
        {"user": LONG},
        {"repositories": ["main"] * 1000},
        {"repositories": [LONG]},
        {"actions": ["read"] * 1000},
    ):
        response = client.post("/api/v1/tokens", json=body, auth=ALICE)
        assert response.status_code == 422, (body, response.text)


def test_a_token_cannot_make_a_token_that_outlives_it(client: TestClient) -> None:
    parent = make_token(client, repositories=["main"], actions=["admin"], expires="1h")
    headers = bearer(parent["secret"])
    forever = client.post("/api/v1/tokens", json={"repositories": ["main"]}, headers=headers)
    assert forever.status_code == 403, forever.text
    assert "must expire" in forever.json()["detail"]
    later = client.post(
        "/api/v1/tokens", json={"repositories": ["main"], "expires": "2h"}, headers=headers
    )
    assert later.status_code == 403, later.text
    assert "no later than" in later.json()["detail"]
    child = client.post(
        "/api/v1/tokens", json={"repositories": ["main"], "expires": "30m"}, headers=headers
    )
    assert child.status_code == 201, child.text
    # a password login may still make a token that never expires
    assert make_token(client, repositories=["main"])["expires_at"] is None


def test_a_narrow_token_sees_and_revokes_only_what_it_covers(client: TestClient) -> None:
    reader = make_token(client, repositories=["main"], name="reader")
    other = make_token(client, repositories=["other"], name="other")
    unscoped = make_token(client, name="unscoped")
    admin_main = make_token(client, repositories=["main"], actions=["admin"], name="admin-main")

    listed = client.get("/api/v1/tokens", headers=bearer(reader["secret"]))
    assert listed.status_code == 200
    assert [t["name"] for t in listed.json()] == ["reader"]
    for target in (other, unscoped, admin_main):
        for method in ("GET", "DELETE"):
            refused = client.request(
                method, f"/api/v1/tokens/{target['id']}", headers=bearer(reader["secret"])
            )
            assert refused.status_code == 403, (method, target["name"], refused.text)
    assert client.get(f"/api/v1/tokens/{reader['id']}", headers=bearer(reader["secret"])).is_success

    by_admin = client.get("/api/v1/tokens", headers=bearer(admin_main["secret"])).json()
    assert sorted(t["name"] for t in by_admin) == ["admin-main", "reader"]
    revoked = client.delete(f"/api/v1/tokens/{reader['id']}", headers=bearer(admin_main["secret"]))
    assert revoked.status_code == 200
    assert (
        client.delete(
            f"/api/v1/tokens/{unscoped['id']}", headers=bearer(admin_main["secret"])
        ).status_code
        == 403
    )
    # the password manages every token of its own
    assert client.delete(f"/api/v1/tokens/{other['id']}", auth=ALICE).status_code == 200


def test_validation_errors_name_the_field_but_never_echo_what_was_sent(
    client: TestClient,
) -> None:
    secret = "Sup3r-secret-value"
    response = client.post("/api/v1/users", json={"name": "bob", "password": [secret]}, auth=ROOT)
    assert response.status_code == 422
    assert secret not in response.text
    assert response.json()["detail"][0]["loc"] == ["body", "password"]


def test_unknown_fields_and_loose_booleans_are_refused(client: TestClient) -> None:
    misspelt = client.post("/api/v1/tokens", json={"scope": "upload"}, auth=ROOT)
    assert misspelt.status_code == 422
    assert misspelt.json()["detail"][0]["loc"] == ["body", "scope"]
    loose = client.post(
        "/api/v1/users", json={"name": "carol", "password": "carol-pw-123", "admin": "yes"},
        auth=ROOT,
    )  # fmt: skip
    assert loose.status_code == 422
    assert client.get("/api/v1/users/carol", auth=ROOT).status_code == 404


def test_a_grant_to_a_group_that_does_not_exist_is_refused(client: TestClient) -> None:
    response = client.put(
        "/api/v1/repositories/pypi/main/permissions",
        json={"principal": "nogroup", "kind": "group", "action": "read"},
        auth=ROOT,
    )
    assert response.status_code == 404
    assert "no group named 'nogroup'" in response.json()["detail"]


@pytest.mark.parametrize("length", ["\u00b2", "9" * 5000, "-1", "12 "])
def test_odd_content_lengths_are_not_a_server_error(client: TestClient, length: str) -> None:
    response = client.post(
        "/pypi/main/",
        content=b"x",
        headers={
            "Content-Length": length.encode("latin-1"),  # as raw bytes, the way a client may
            "Content-Type": "multipart/form-data; boundary=b",
        },
        auth=ROOT,
    )
    assert response.status_code < 500
