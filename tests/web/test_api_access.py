"""Access to repositories over HTTP: private repositories answer 401/403 on every path,
credentials in every form clients send them, the failed-login limit, and no secret in logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
from starlette.testclient import TestClient

from packhouse.config import Settings
from packhouse.services import accounts
from packhouse.services.repos import create_repository, set_permission
from packhouse.types import Action, Format
from packhouse.web.app import create_app
from packhouse.wiring import Services
from tests.builders import make_wheel

ROOT = ("root", "root-password")
BOB = ("bob", "bob-password")


@pytest.fixture
def svc(memory_services: Services) -> Services:
    s = memory_services
    s.ctx.settings = Settings(data=s.ctx.settings.data, login_failure_limit=3)
    s.access = type(s.access)(s.ctx)
    accounts.create_user(s.ctx, actor="t", name="root", password=ROOT[1], admin=True)
    accounts.create_user(s.ctx, actor="t", name="bob", password=BOB[1], admin=False)
    create_repository(s.ctx, actor="t", name="main", fmt=Format.PYPI)
    create_repository(s.ctx, actor="t", name="other", fmt=Format.PYPI)
    return s


@pytest.fixture
def client(svc: Services, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(svc.ctx.settings, svc)) as test_client:
        wheel = make_wheel(tmp_path, "secret-thing", "1.0")
        response = test_client.post(
            "/pypi/main/",
            auth=ROOT,
            data={":action": "file_upload", "name": "secret-thing", "version": "1.0"},
            files={"content": (wheel.name, wheel.read_bytes())},
        )
        assert response.status_code == 200, response.text
        yield test_client


def file_url(client: TestClient) -> str:
    page = client.get(
        "/pypi/main/simple/secret-thing/",
        auth=ROOT,
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    relative: str = page.json()["files"][0]["url"]
    url = urljoin("http://testserver/pypi/main/simple/secret-thing/", relative)
    assert url.startswith("http://testserver/files/"), url
    return url.removeprefix("http://testserver")


PATHS = [
    "/pypi/main/simple/",
    "/pypi/main/simple/secret-thing/",
    "/pypi/main/simple/no-such-project/",
    "/pypi/main/simple/Secret_Thing/",  # not normalised: no redirect that confirms it
    "/pypi/main/pypi/secret-thing/json",
    "/pypi/main/pypi/no-such-project/json",
    "/pypi/main/pypi/secret-thing/1.0/json",
]


def test_private_repository_is_401_everywhere_for_anonymous(client: TestClient) -> None:
    for path in [*PATHS, file_url(client), file_url(client) + ".metadata"]:
        for method in ("GET", "HEAD"):
            response = client.request(method, path, follow_redirects=False)
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"].startswith('Basic realm="packhouse"')
    upload = client.post("/pypi/main/", data={":action": "file_upload"})
    assert upload.status_code == 401


def test_private_repository_is_403_for_callers_without_the_right(client: TestClient) -> None:
    for path in [*PATHS, file_url(client)]:
        response = client.get(path, auth=BOB, follow_redirects=False)
        assert response.status_code == 403, (path, response.status_code)
        assert "'bob' may not read" in response.text or "may not read this file" in response.text
        # and says which command gives the right
        assert "`packhouse repo grant pypi/main bob read`" in response.text, response.text
    assert client.get("/pypi/main/simple/secret-thing/", auth=ROOT).status_code == 200
    assert client.get("/pypi/main/simple/no-such-project/", auth=ROOT).status_code == 404


def test_public_repository_is_readable_anonymously_but_not_writable(
    client: TestClient, svc: Services
) -> None:
    set_permission(
        svc.ctx,
        actor="t",
        fmt=Format.PYPI,
        name="main",
        principal=":anonymous:",
        action=Action.READ,
    )
    page = client.get("/pypi/main/simple/secret-thing/")
    assert page.status_code == 200
    assert page.headers["cache-control"].startswith("public")
    assert client.get(file_url(client)).status_code == 200
    assert client.post("/pypi/main/", data={":action": "file_upload"}).status_code == 401


def token_for(svc: Services, owner: str, repos: list[str] | None, *actions: Action) -> str:
    made = accounts.create_token(
        svc.ctx,
        svc.access,
        svc.catalog,
        actor="t",
        owner=owner,
        repositories=repos,
        actions=list(actions) or [Action.READ],
    )
    return made.secret


def test_tokens_in_every_form_and_their_limits(client: TestClient, svc: Services) -> None:
    secret = token_for(svc, "root", ["main"], Action.READ)
    ok = [
        client.get("/pypi/main/simple/", auth=("__token__", secret)),
        client.get("/pypi/main/simple/", auth=("ci", secret)),
        client.get("/pypi/main/simple/", headers={"Authorization": f"Bearer {secret}"}),
        client.get(f"/t/{secret}/pypi/main/simple/"),
    ]
    assert [r.status_code for r in ok] == [200, 200, 200, 200]
    # a token for main cannot read other; a read token cannot upload
    assert client.get("/pypi/other/simple/", auth=("__token__", secret)).status_code == 403
    upload = client.post("/pypi/main/", auth=("__token__", secret), data={":action": "x"})
    assert upload.status_code == 403
    assert "this token may not upload" in upload.text
    for bad in ("ph_nope", secret[:-2], "ph_" + "A" * 43):
        response = client.get("/pypi/main/simple/", auth=("__token__", bad))
        assert response.status_code == 401
        assert "www-authenticate" in response.headers
        assert bad not in response.text
    assert client.get("/t/ph_nope/pypi/main/simple/").status_code == 401


def test_failed_logins_engage_the_limit_with_retry_after(client: TestClient) -> None:
    for _ in range(3):
        assert client.get("/pypi/main/simple/", auth=("bob", "wrong")).status_code == 401
    limited = client.get("/pypi/main/simple/", auth=BOB)  # the right password, too late
    assert limited.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= 300
    assert "try again in" in limited.text
    # credentials verified before the attack keep working (remembered verification)
    assert client.get("/pypi/main/simple/", auth=ROOT).status_code == 200


def test_no_secret_reaches_the_log(
    client: TestClient, svc: Services, caplog: pytest.LogCaptureFixture
) -> None:
    secret = token_for(svc, "root", None, Action.READ)
    with caplog.at_level(logging.INFO):
        client.get(f"/t/{secret}/pypi/main/simple/")
        client.get(f"/t/{secret}/pypi/main/simple/secret-thing/")
        client.get("/pypi/main/simple/", auth=("__token__", secret))
        client.get("/pypi/main/simple/", auth=ROOT)
        client.get("/pypi/main/simple/", auth=("root", "a-wrong-password"))
    text = caplog.text
    assert "/t/***/pypi/main/simple/" in text
    for secret_text in (secret, secret[3:], ROOT[1], "a-wrong-password"):
        assert secret_text not in text


def test_conda_channel_with_a_token_in_the_url(client: TestClient, svc: Services) -> None:
    create_repository(svc.ctx, actor="t", name="main", fmt=Format.CONDA)
    paths = [
        "/conda/main/noarch/repodata.json",
        "/conda/main/channeldata.json",
        "/conda/main/linux-64/no-such-package-1.0-0.conda",
    ]
    for path in paths:
        anonymous = client.get(path)
        assert anonymous.status_code == 401, path
        assert anonymous.headers["www-authenticate"].startswith("Basic realm=")
        assert client.get(path, auth=BOB).status_code == 403, path
    secret = token_for(svc, "root", ["conda/main"], Action.READ)
    repodata = client.get(f"/t/{secret}/conda/main/noarch/repodata.json")
    assert repodata.status_code == 200
    assert repodata.headers["referrer-policy"] == "no-referrer"
    assert client.get(f"/t/{secret}/pypi/main/simple/").status_code == 403  # conda only
    assert client.get("/t/ph_not-a-token/conda/main/noarch/repodata.json").status_code == 401


def test_conda_channel_with_the_token_where_conda_itself_puts_it(
    client: TestClient, svc: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """conda reads `/t/<token>/conda/main` as location `host/conda`, channel `main`, and asks
    for `/conda/t/<token>/main/...`; a channel named `t` keeps its own paths."""
    create_repository(svc.ctx, actor="t", name="main", fmt=Format.CONDA)
    create_repository(svc.ctx, actor="t", name="t", fmt=Format.CONDA, public=True)
    secret = token_for(svc, "root", ["conda/main"], Action.READ)
    with caplog.at_level(logging.INFO):
        moved = client.get(f"/conda/t/{secret}/main/noarch/repodata.json")
        assert moved.status_code == 200
        assert moved.json()["info"]["subdir"] == "noarch"
        assert client.head(f"/conda/t/{secret}/main/linux-64/repodata.json").status_code == 200
        malformed = client.get("/conda/t/ph-not-a-token/main/noarch/repodata.json")
        assert malformed.status_code == 401
        assert "malformed" in malformed.text
    assert "/conda/t/***/main/noarch/repodata.json" in caplog.text
    assert secret not in caplog.text
    assert secret[3:] not in caplog.text
    named_t = client.get("/conda/t/noarch/repodata.json")
    assert named_t.status_code == 200
    assert named_t.json()["info"]["subdir"] == "noarch"
    assert client.get("/conda/t/noarch/", auth=BOB).status_code == 200
