"""The web UI's administration pages over plain HTTP (in-process): only a signed-in
administrator reaches them, every change needs the session's CSRF token and is journaled."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from packhouse.types import Format
from packhouse.wiring import Services
from tests.web.test_ui_http import ALICE, BOB, sign_in
from tests.web.test_ui_http import client as ui_client

__all__ = ["ui_client"]  # the fixture, shared


@pytest.fixture
def client(ui_client: TestClient) -> TestClient:
    return ui_client


def csrf_of(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert found is not None
    return found.group(1)


def test_only_an_administrator_reaches_the_pages(client: TestClient) -> None:
    for path in ("/ui/admin/users", "/ui/admin/repositories", "/ui/admin/journal"):
        anonymous = client.get(path, follow_redirects=False)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/ui/login?next=")
    sign_in(client, BOB)
    assert "/ui/admin/users" not in client.get("/").text  # no Admin link
    for path in ("/ui/admin/users", "/ui/admin/journal"):
        refused = client.get(path, headers={"Accept": "text/html"})
        assert refused.status_code == 403
        assert "is not an administrator" in refused.text
    # Basic credentials of an administrator are no session: not enough either
    with_basic = client.get("/ui/admin/users", auth=ALICE, follow_redirects=False)
    assert with_basic.status_code == 403


def test_users_created_disabled_and_journaled(
    client: TestClient, memory_services: Services
) -> None:
    sign_in(client, ALICE)
    csrf = csrf_of(client)
    page = client.get("/ui/admin/users")
    assert page.status_code == 200
    assert "bob" in page.text
    forged = client.post("/ui/admin/users", data={"name": "carol", "password": "x-Pa55word!"})
    assert forged.status_code == 403
    made = client.post(
        "/ui/admin/users", data={"csrf": csrf, "name": "carol", "password": "carol-Pa55word"}
    )
    assert made.status_code == 200
    assert "carol" in made.text
    disabled = client.post("/ui/admin/users/carol", data={"csrf": csrf, "change": "disable"})
    assert disabled.status_code == 200
    assert memory_services.access.snapshot().users["carol"].disabled
    own = client.post(
        "/ui/admin/users/alice",
        data={"csrf": csrf, "change": "disable"},
        headers={"Accept": "text/html"},
    )
    assert own.status_code == 400
    journal = client.get("/ui/admin/journal?actor=alice&action=user.disable")
    assert "user.disable" in journal.text
    assert "carol" in journal.text
    assert "user.create" not in journal.text.split("<tbody>")[1]


def test_repositories_and_permissions(client: TestClient) -> None:
    sign_in(client, ALICE)
    csrf = csrf_of(client)
    made = client.post(
        "/ui/admin/repositories",
        data={"csrf": csrf, "name": "team", "format": "pypi", "description": "Team packages",
              "bases": "open"},
    )  # fmt: skip
    assert made.status_code == 200
    assert "team → open" in made.text
    assert "pypi/team" in client.get("/ui/admin/repositories").text
    granted = client.post(
        "/ui/admin/repositories/pypi/team/permissions",
        data={"csrf": csrf, "principal": "bob", "action": "read"},
    )
    assert granted.status_code == 200
    assert "<td>bob</td>" in granted.text
    bad = client.post(
        "/ui/admin/repositories/pypi/team/permissions",
        data={"csrf": csrf, "principal": "bob", "action": "everything"},
        headers={"Accept": "text/html"},
    )
    assert bad.status_code == 400
    # bob now reads team (and, through it, open's projects)
    client.post("/ui/logout", data={"csrf": csrf})
    sign_in(client, BOB)
    assert "pypi/team" in client.get("/").text
    assert "demo-pkg" in client.get("/ui/pypi/team/").text
    client.post("/ui/logout", data={"csrf": csrf_of(client)})
    sign_in(client, ALICE)
    csrf = csrf_of(client)
    revoked = client.post(
        "/ui/admin/repositories/pypi/team/permissions",
        data={"csrf": csrf, "principal": "bob", "kind": "user", "action": "none"},
    )
    assert revoked.status_code == 200
    assert "<td>bob</td>" not in revoked.text


def test_groups_and_repository_settings(client: TestClient, memory_services: Services) -> None:
    sign_in(client, ALICE)
    csrf = csrf_of(client)
    made = client.post("/ui/admin/groups", data={"csrf": csrf, "name": "devs"})
    assert made.status_code == 200
    added = client.post(
        "/ui/admin/groups/devs", data={"csrf": csrf, "change": "add", "user": "bob"}
    )
    assert added.status_code == 200
    assert "bob" in added.text.split("<h2>devs</h2>")[1].split("</section>")[0]
    # the group gets read on secret: bob now reads it
    client.post(
        "/ui/admin/repositories/pypi/secret/permissions",
        data={"csrf": csrf, "principal": "devs", "kind": "group", "action": "read"},
    )
    saved = client.post(
        "/ui/admin/repositories/pypi/secret",
        data={"csrf": csrf, "description": "Hidden things", "bases": "open",
              "allow_upstream": "", "min_age_days": "3", "cooldown_exempt": "demo-pkg"},
    )  # fmt: skip
    assert saved.status_code == 200, saved.text
    assert "secret → open" in saved.text
    repo = memory_services.catalog.get(Format.PYPI, "secret")
    assert repo.bases == ("open",)
    assert repo.cooldown.min_age == 3 * 86400
    assert repo.cooldown.exempt == ("demo-pkg",)
    cleared = client.post(
        "/ui/admin/repositories/pypi/secret",
        data={"csrf": csrf, "description": "Hidden things", "bases": "", "min_age_days": ""},
    )
    assert cleared.status_code == 200
    assert memory_services.catalog.get(Format.PYPI, "secret").cooldown.min_age is None
    client.post("/ui/logout", data={"csrf": csrf})
    sign_in(client, BOB)
    assert "hidden-thing" in client.get("/ui/pypi/secret/").text
    journal_denied = client.get("/ui/admin/groups", headers={"Accept": "text/html"})
    assert journal_denied.status_code == 403
