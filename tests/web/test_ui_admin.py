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


def test_proxy_settings_form_and_the_upstream_secret_never_shown(
    client: TestClient, memory_services: Services
) -> None:
    sign_in(client, ALICE)
    csrf = csrf_of(client)
    made = client.post(
        "/ui/admin/repositories",
        data={"csrf": csrf, "name": "mirror", "format": "pypi",
              "upstream": "https://pypi.example.invalid/simple/"},
    )  # fmt: skip
    assert made.status_code == 200, made.text
    page = "/ui/admin/repositories/pypi/mirror"
    secret = "upstream-Secret-token-42"
    settings = {
        "csrf": csrf, "description": "A mirror", "upstream": "https://pypi.example.invalid/simple/",
        "upstream_user": "reader", "upstream_password": secret, "ttl": "10m", "offline": "on",
        "allow_upstream": "Demo_Pkg", "min_age_days": "2", "cooldown_exempt": "urgent-fix",
        "exclude_newer": "2026-06-30",
    }  # fmt: skip
    saved = client.post(page, data=settings)
    assert saved.status_code == 200, saved.text
    repo = memory_services.catalog.get(Format.PYPI, "mirror")
    assert (repo.proxy.user, repo.proxy.password, repo.proxy.ttl) == ("reader", secret, 600)
    assert repo.proxy.offline
    assert repo.allow_upstream == ("demo-pkg",)
    assert repo.cooldown.min_age == 2 * 86400
    assert repo.cooldown.exempt == ("urgent-fix",)
    assert repo.cooldown.exclude_newer is not None
    assert repo.cooldown.exclude_newer.isoformat() == "2026-07-01T00:00:00+00:00"
    assert secret not in saved.text
    assert "one is stored: leave empty to keep it" in saved.text
    # sent again with the password field empty (as the form shows it): the secret is kept
    kept = client.post(page, data={**settings, "upstream_password": "", "offline": ""})
    assert kept.status_code == 200
    repo = memory_services.catalog.get(Format.PYPI, "mirror")
    assert repo.proxy.password == secret
    assert not repo.proxy.offline
    journal = client.get("/ui/admin/journal?action=repo.update").text
    assert "repo.update" in journal
    assert secret not in journal
    # bad input: a 400 that says what is wrong, nothing changed
    for field, value, said in [
        ("ttl", "soon", "cannot read the duration"),
        ("exclude_newer", "next week", "cannot read the date"),
        ("upstream", "https://user:pw@pypi.example.invalid/simple/", "holds credentials"),
        ("upstream", "ftp://pypi.example.invalid/", "must start with http"),
        ("upstream_user", "a:b", "1 to 200 characters, without"),
        ("allow_upstream", "not a name!", "not a valid project name"),
        ("min_age_days", "many", "not a number of days"),
    ]:
        bad = client.post(page, data={**settings, field: value}, headers={"Accept": "text/html"})
        assert bad.status_code == 400, (field, bad.status_code)
        assert said in bad.text, (field, bad.text[:300])
        assert secret not in bad.text
    assert memory_services.catalog.get(Format.PYPI, "mirror").proxy.ttl == 600
    # emptied fields clear; the checkbox removes the credentials
    cleared = client.post(
        page,
        data={**settings, "ttl": "", "exclude_newer": "", "min_age_days": "", "clear_auth": "on"},
    )
    assert cleared.status_code == 200
    repo = memory_services.catalog.get(Format.PYPI, "mirror")
    assert (repo.proxy.user, repo.proxy.password, repo.proxy.ttl) == (None, None, None)
    assert repo.cooldown.exclude_newer is None
    assert repo.cooldown.min_age is None
    forged = client.post(page, data={**settings, "csrf": "wrong"})
    assert forged.status_code == 403


def test_service_accounts_and_their_tokens(client: TestClient) -> None:
    sign_in(client, ALICE)
    csrf = csrf_of(client)
    made = client.post("/ui/admin/users", data={"csrf": csrf, "name": "ci-bot", "service": "on"})
    assert made.status_code == 200
    assert "New token for ci-bot" in made.text  # its page, where its tokens are made
    assert "service account" in client.get("/ui/admin/users").text
    page = "/ui/admin/users/ci-bot"
    wanted = {"csrf": csrf, "token_name": "ci-publish", "action": "upload",
              "repo": "pypi/open", "expires": "30d"}  # fmt: skip
    refused = client.post(f"{page}/tokens", data=wanted, headers={"Accept": "text/html"})
    assert refused.status_code == 403  # it holds no upload right on pypi/open yet
    assert "grant it first" in refused.text
    client.post(
        "/ui/admin/repositories/pypi/open/permissions",
        data={"csrf": csrf, "principal": "ci-bot", "action": "upload"},
    )
    created = client.post(f"{page}/tokens", data=wanted)
    assert created.status_code == 201
    secret = re.search(r'id="new-token">(ph-[A-Za-z0-9]+)<', created.text)
    assert secret is not None
    listed = client.get(page)
    assert secret.group(1) not in listed.text  # shown once
    assert "ci-publish" in listed.text
    assert "upload on pypi/open" in listed.text
    # the token works for the service account (a pip-style Basic __token__ login)
    simple = client.get("/pypi/open/simple/", auth=("__token__", secret.group(1)))
    assert simple.status_code == 200
    no_repo = client.post(
        f"{page}/tokens", data={**wanted, "repo": ""}, headers={"Accept": "text/html"}
    )
    assert no_repo.status_code == 400
    token_id = re.search(r'action="/ui/admin/users/ci-bot/tokens/(\d+)/revoke"', listed.text)
    assert token_id is not None
    revoked = client.post(f"{page}/tokens/{token_id.group(1)}/revoke", data={"csrf": csrf})
    assert revoked.status_code == 200
    assert "No live tokens." in revoked.text
    assert client.get("/pypi/open/simple/", auth=("__token__", secret.group(1))).status_code == 401
    # a user with a password makes their own tokens
    for_bob = client.post(
        "/ui/admin/users/bob/tokens", data=wanted, headers={"Accept": "text/html"}
    )
    assert for_bob.status_code == 400
    missing = client.get("/ui/admin/users/nobody", headers={"Accept": "text/html"})
    assert missing.status_code == 404


def test_an_administrator_resets_a_password(client: TestClient) -> None:
    sign_in(client, ALICE)
    csrf = csrf_of(client)
    differ = client.post(
        "/ui/admin/users/bob/password",
        data={"csrf": csrf, "password": "new-bob-Pa55", "again": "new-bob-Pa56"},
        headers={"Accept": "text/html"},
    )
    assert differ.status_code == 400
    assert "differ" in differ.text
    token_like = client.post(
        "/ui/admin/users/bob/password",
        data={"csrf": csrf, "password": "ph-looks-like-a-token", "again": "ph-looks-like-a-token"},
        headers={"Accept": "text/html"},
    )
    assert token_like.status_code == 400
    done = client.post(
        "/ui/admin/users/bob/password",
        data={"csrf": csrf, "password": "new-bob-Pa55", "again": "new-bob-Pa55"},
    )
    assert done.status_code == 200
    assert "The password of bob was changed." in done.text
    assert "new-bob-Pa55" not in done.text
    assert client.get("/pypi/open/simple/", auth=BOB).status_code == 401
    assert client.get("/pypi/open/simple/", auth=("bob", "new-bob-Pa55")).status_code == 200
    journal = client.get("/ui/admin/journal?action=user.password").text
    assert "user.password" in journal
    assert "new-bob-Pa55" not in journal
