"""The web UI over plain HTTP, in-process against the real app and in-memory stores: what
each page shows and to whom, sessions and CSRF, cookie flags, security headers, and errors
chosen by the Accept header."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from packhouse.auth.passwords import hash_password
from packhouse.db import user_store
from packhouse.services.repos import create_repository, set_permission
from packhouse.types import Action, Format
from packhouse.web.app import create_app
from packhouse.wiring import Services
from tests.builders import make_wheel, metadata_text, synth

ALICE = ("alice", "alice-password-1")  # administrator
BOB = ("bob", "bob-password-12")  # reads only what is public
DESCRIPTION = """# Demo heading

Some **bold** text and a list:

- one
- two

<script>alert("owned")</script>
<img src="x" onerror="alert(1)">
[click](javascript:alert(2))
"""


def described_wheel(directory: Path, name: str, version: str, summary: str) -> Path:
    text = metadata_text(
        name,
        version,
        summary=summary,
        requires_python=">=3.9",
        requires=["idna>=3"],
        extra_headers={
            "Description-Content-Type": "text/markdown",
            "License-Expression": "MIT",
            "Project-URL": "Source, https://example.invalid/src",
        },
    )
    body = text.removesuffix("Long description.\n") + DESCRIPTION
    return make_wheel(directory, name, version, metadata=body)


def upload(client: TestClient, repo: str, path: Path, auth: tuple[str, str] = ALICE) -> None:
    name, version = path.name.split("-")[:2]
    response = client.post(
        f"/pypi/{repo}/",
        auth=auth,
        data={":action": "file_upload", "name": name, "version": version},
        files={"content": (path.name, path.read_bytes())},
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def client(memory_services: Services, tmp_path: Path) -> Iterator[TestClient]:
    svc = memory_services
    with svc.ctx.db.write() as conn:
        user_store.create_user(conn, ALICE[0], hash_password(ALICE[1]), is_admin=True)
        user_store.create_user(conn, BOB[0], hash_password(BOB[1]), is_admin=False)
    for name, fmt in (("secret", Format.PYPI), ("open", Format.PYPI), ("forge", Format.CONDA)):
        create_repository(svc.ctx, actor="t", name=name, fmt=fmt)
    for name, fmt in (("open", Format.PYPI), ("forge", Format.CONDA)):
        set_permission(
            svc.ctx, actor="t", fmt=fmt, name=name, principal=":anonymous:", action=Action.READ
        )
    with TestClient(create_app(svc.ctx.settings, svc)) as test_client:
        upload(test_client, "open", described_wheel(tmp_path, "Demo_Pkg", "1.0", "Frobs widgets"))
        upload(test_client, "open", described_wheel(tmp_path, "Demo_Pkg", "1.1", "Frobs widgets"))
        upload(test_client, "secret", described_wheel(tmp_path, "hidden-thing", "2.0", "Secret"))
        filename, data = synth.package_bytes("tinytool", "0.3", "h1_0", depends=["python >=3.9"])
        put = test_client.put(f"/conda/forge/noarch/{filename}", content=data, auth=ALICE)
        assert put.status_code in (200, 201), put.text
        yield test_client


def sign_in(client: TestClient, who: tuple[str, str]) -> str:
    """Signs in through the form; returns the session's CSRF token."""
    form = client.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    response = client.post(
        "/ui/login",
        data={"csrf": token.group(1), "username": who[0], "password": who[1], "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    home = client.get("/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', home.text)
    assert csrf is not None
    return csrf.group(1)


def assert_secure_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"


def test_home_lists_only_what_the_viewer_may_read(client: TestClient) -> None:
    anonymous = client.get("/")
    assert anonymous.status_code == 200
    assert_secure_headers(anonymous)
    assert "pypi/open" in anonymous.text
    assert "conda/forge" in anonymous.text
    assert "secret" not in anonymous.text
    assert "hidden-thing" not in anonymous.text
    assert "demo-pkg" in anonymous.text  # the latest uploads
    sign_in(client, ALICE)
    admin = client.get("/")
    assert "pypi/secret" in admin.text
    assert "hidden-thing" in admin.text
    # the simple index stays where it was
    assert client.get("/pypi/open/simple/").status_code == 200


def test_project_page_renders_the_description_cleaned(client: TestClient) -> None:
    page = client.get("/ui/pypi/open/demo-pkg/")
    assert page.status_code == 200, page.text
    assert_secure_headers(page)
    text = page.text
    assert re.search(r"<h1[^>]*>Demo heading<", text)
    assert "<strong>bold</strong>" in text
    assert "<script>alert" not in text
    assert "onerror" not in text
    assert 'href="javascript:' not in text
    assert "<script" not in text.replace('<script src="/ui/static/ui.js', "")
    assert "1.1" in text
    assert "1.0" in text
    assert "&gt;=3.9" in text
    assert "MIT" in text
    assert "idna&gt;=3" in text
    assert "https://example.invalid/src" in text
    assert "pip install --index-url http://testserver/pypi/open/simple/ Demo_Pkg" in text
    assert "[[index]]" in text
    assert "index-url = http://testserver/pypi/open/simple/" in text
    files = client.get("/pypi/open/pypi/demo-pkg/json").json()["urls"]
    assert files[0]["digests"]["sha256"] in text
    assert files[0]["filename"] in text
    older = client.get("/ui/pypi/open/demo-pkg/1.0/")
    assert older.status_code == 200
    assert "Demo_Pkg==1.0" in older.text
    moved = client.get("/ui/pypi/open/Demo_Pkg/", follow_redirects=False)
    assert moved.status_code == 301
    assert moved.headers["location"] == "/ui/pypi/open/demo-pkg/"


def test_yanked_file_shows_its_reason(client: TestClient, memory_services: Services) -> None:
    from packhouse.services import manage

    svc = memory_services
    repo = svc.catalog.get(Format.PYPI, "open")
    target = manage.Target("demo-pkg", "1.0", None)
    manage.set_yanked(svc.ctx, repo, target, actor="t", yanked=True, reason="broke the frobber")
    filename = client.get("/pypi/open/pypi/demo-pkg/1.0/json").json()["urls"][0]["filename"]
    page = client.get("/ui/pypi/open/demo-pkg/")
    yanked = page.text.split("Yanked files")[1]
    assert filename in yanked
    assert "broke the frobber" in yanked
    release = client.get("/ui/pypi/open/demo-pkg/1.0/").text
    assert "Yanked: broke the frobber" in release


def test_repository_page_filters_and_private_ones_ask_to_sign_in(client: TestClient) -> None:
    page = client.get("/ui/pypi/open/?q=frob")
    assert page.status_code == 200
    assert "demo-pkg" in page.text
    assert "demo-pkg" not in client.get("/ui/pypi/open/?q=zzz").text
    private = client.get("/ui/pypi/secret/", follow_redirects=False)
    assert private.status_code == 303
    assert private.headers["location"] == "/ui/login?next=/ui/pypi/secret/"
    project = client.get("/ui/pypi/secret/hidden-thing/", follow_redirects=False)
    assert project.status_code == 303
    sign_in(client, BOB)
    refused = client.get("/ui/pypi/secret/hidden-thing/", headers={"Accept": "text/html"})
    assert refused.status_code == 403
    assert "hidden-thing" not in refused.text.split("<main>")[1].replace("may not read", "")
    assert_secure_headers(refused)


def test_search_by_name_and_summary_within_what_may_be_read(client: TestClient) -> None:
    by_name = client.get("/ui/search?q=demo")
    assert "demo-pkg" in by_name.text or "Demo_Pkg" in by_name.text
    by_summary = client.get("/ui/search?q=widgets")
    assert "Demo_Pkg" in by_summary.text
    assert "hidden-thing" not in client.get("/ui/search?q=hidden").text
    assert "tinytool" in client.get("/ui/search?q=tiny").text
    sign_in(client, ALICE)
    assert "hidden-thing" in client.get("/ui/search?q=hidden").text
    too_long = client.get("/ui/search?q=" + "x" * 300, headers={"Accept": "text/html"})
    assert too_long.status_code == 400


def test_conda_package_page(client: TestClient) -> None:
    page = client.get("/ui/conda/forge/tinytool/")
    assert page.status_code == 200, page.text
    assert "noarch" in page.text
    assert "h1_0" in page.text
    assert "python &gt;=3.9" in page.text
    install = "conda install --override-channels -c http://testserver/conda/forge tinytool"
    assert install in page.text
    assert "channels:\n  - http://testserver/conda/forge</code>" in page.text  # that one only
    assert "conda-forge" not in page.text  # a second channel would undo the group's rules
    assert '[dependencies]\ntinytool = "*"' in page.text.replace("&#34;", '"')
    assert client.get("/ui/conda/forge/").status_code == 200


def test_sign_in_cookies_and_csrf(client: TestClient) -> None:
    form = client.get("/ui/login")
    login_cookie = form.headers["set-cookie"]
    assert "HttpOnly" in login_cookie
    assert "SameSite=strict" in login_cookie
    assert "Secure" not in login_cookie  # plain http
    refused = client.post("/ui/login", data={"username": ALICE[0], "password": ALICE[1]})
    assert refused.status_code == 403
    assert "ph_session" not in refused.headers.get("set-cookie", "")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    wrong = client.post(
        "/ui/login",
        data={"csrf": token.group(1), "username": ALICE[0], "password": "wrong-password"},
        follow_redirects=False,
    )
    assert wrong.status_code == 401
    assert "wrong" in wrong.text
    assert "www-authenticate" not in wrong.headers  # no browser password dialog
    good = client.post(
        "/ui/login",
        data={"csrf": token.group(1), "username": ALICE[0], "password": ALICE[1]},
        follow_redirects=False,
    )
    assert good.status_code == 303
    session_cookie = next(
        v for k, v in good.headers.multi_items() if k == "set-cookie" and "ph_session" in v
    )
    assert "HttpOnly" in session_cookie
    assert "SameSite=lax" in session_cookie
    assert "Secure" not in session_cookie
    # sign out needs the session's CSRF token
    assert client.post("/ui/logout", data={"csrf": "forged"}).status_code == 403
    assert "Sign out" in client.get("/").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert csrf is not None
    out = client.post("/ui/logout", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert out.status_code == 303
    assert "Sign in" in client.get("/").text


def test_cookies_are_secure_over_https(memory_services: Services) -> None:
    with TestClient(
        create_app(memory_services.ctx.settings, memory_services), base_url="https://testserver"
    ) as secure_client:
        response = secure_client.get("/ui/login")
        assert "Secure" in response.headers["set-cookie"]


def test_a_stolen_session_cookie_ends_with_sign_out(client: TestClient) -> None:
    csrf = sign_in(client, ALICE)
    cookie = client.cookies["ph_session"]
    client.post("/ui/logout", data={"csrf": csrf})
    client.cookies.set("ph_session", cookie)
    replay = client.get("/ui/tokens", follow_redirects=False)
    assert replay.status_code == 303  # to the sign-in page


def test_the_session_cookie_alone_opens_no_upload_or_api(
    client: TestClient, tmp_path: Path
) -> None:
    sign_in(client, ALICE)
    wheel = make_wheel(tmp_path, "cookie-only", "1.0")
    response = client.post(
        "/pypi/open/",
        data={":action": "file_upload", "name": "cookie-only", "version": "1.0"},
        files={"content": (wheel.name, wheel.read_bytes())},
    )
    assert response.status_code == 401
    assert client.get("/api/v1/users").status_code == 401
    assert client.get("/pypi/secret/simple/").status_code == 401


def test_tokens_page_creates_shows_once_and_revokes(client: TestClient) -> None:
    csrf = sign_in(client, BOB)
    assert client.post("/ui/tokens", data={"action": "read", "scope": "all"}).status_code == 403
    made = client.post(
        "/ui/tokens",
        data={"csrf": csrf, "name": "ci", "action": "read", "scope": "some",
              "repo": "pypi/open", "expires": "30d"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    secret = re.search(r'id="new-token">(ph-[A-Za-z0-9]+)<', made.text)
    assert secret is not None
    bearer = {"Authorization": f"Bearer {secret.group(1)}"}
    assert client.get("/pypi/open/simple/", headers=bearer).status_code == 200
    listing = client.get("/ui/tokens")
    assert secret.group(1) not in listing.text
    assert "ci" in listing.text
    token_id = re.search(r'action="/ui/tokens/(\d+)/revoke"', listing.text)
    assert token_id is not None
    assert client.post(f"/ui/tokens/{token_id.group(1)}/revoke", data={}).status_code == 403
    revoked = client.post(f"/ui/tokens/{token_id.group(1)}/revoke", data={"csrf": csrf})
    assert revoked.status_code == 200  # followed to the list
    assert client.get("/pypi/open/simple/", headers=bearer).status_code == 401
    # bob holds no right on secret, so a token of his cannot
    beyond = client.post(
        "/ui/tokens",
        data={"csrf": csrf, "action": "read", "scope": "some", "repo": "pypi/secret",
              "expires": "7d"},
        headers={"Accept": "text/html"},
    )  # fmt: skip
    assert beyond.status_code == 403
    assert "does not hold read" in beyond.text


def test_errors_follow_the_accept_header(client: TestClient) -> None:
    html = client.get("/pypi/nope/simple/", headers={"Accept": "text/html,*/*;q=0.8"})
    assert html.status_code == 404
    assert html.headers["content-type"].startswith("text/html")
    assert_secure_headers(html)
    assert "there is no pypi repository named" in html.text
    as_json = client.get("/pypi/nope/simple/", headers={"Accept": "application/json"})
    assert as_json.status_code == 404
    assert "detail" in as_json.json()
    plain = client.get("/pypi/nope/simple/")
    assert plain.headers["content-type"].startswith("text/plain")
    api_default = client.get("/api/v1/users")
    assert api_default.status_code == 401
    assert "detail" in api_default.json()
    api_html = client.get("/api/v1/users", headers={"Accept": "text/html"})
    assert api_html.headers["content-type"].startswith("text/html")
    unknown = client.get("/ui/no/such/page", headers={"Accept": "text/html"})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("text/html")
    unknown_json = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert unknown_json.status_code == 404
    assert unknown_json.json() == {"detail": "Not Found"}
    # pip prefers PEP 691 JSON, then HTML at q=0.01: not a browser, so plain text
    pip = (
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.1,"
        " text/html;q=0.01"
    )
    assert (
        client.get("/pypi/nope/simple/", headers={"Accept": pip})
        .headers["content-type"]
        .startswith("text/plain")
    )


def test_static_files_are_served_from_the_server(client: TestClient) -> None:
    page = client.get("/").text
    for link in re.findall(r'(?:href|src)="(/ui/static/[^"]+)"', page):
        response = client.get(link)
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "http://" not in re.sub(r'http://testserver[^"<]*', "", page.split("<main>")[0])


def test_downloads_are_counted_and_charted(client: TestClient) -> None:
    files = client.get("/pypi/open/pypi/demo-pkg/json").json()["releases"]
    newest, older = files["1.1"][0]["url"], files["1.0"][0]["url"]
    path = newest.removeprefix("http://testserver")
    for _ in range(3):
        assert client.get(path).status_code == 200
    assert client.head(path).status_code == 200  # not counted
    assert client.get(path + ".metadata").status_code in (200, 404)  # not counted
    assert client.get(path, headers={"Range": "bytes=10-"}).status_code == 206  # resumed
    assert client.get(older.removeprefix("http://testserver")).status_code == 200
    page = client.get("/ui/pypi/open/demo-pkg/")
    downloads = page.text.split('<section class="downloads">')[1]
    assert "4 in the last 30 days" in downloads
    assert "1.1 3, 1.0 1" in downloads
    assert "<svg" in downloads
    assert ": 4</title>" in downloads  # today's bar
    version = client.get("/ui/pypi/open/demo-pkg/1.0/").text.split('class="downloads"')[1]
    assert "1 in the last 30 days" in version
    filename, _ = synth.package_bytes("tinytool", "0.3", "h1_0", depends=["python >=3.9"])
    assert client.get(f"/conda/forge/noarch/{filename}").status_code == 200
    conda = client.get("/ui/conda/forge/tinytool/").text.split('class="downloads"')[1]
    assert "1 in the last 30 days" in conda
