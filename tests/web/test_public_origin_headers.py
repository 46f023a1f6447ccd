"""Absolute URLs and browser hardening headers, against the real server process: with
`public_url` set, a poisoned Host header never reaches a body or a Location; HTML pages carry
a Content-Security-Policy that allows no script, and every response `nosniff`."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import ADMIN_PASSWORD, RunningServer, start_server, stop_server

AUTH = ("admin", ADMIN_PASSWORD)
PUBLIC = "https://packages.example.com"
EVIL = "evil.example"


@pytest.fixture(scope="module")
def public_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("public")
    running = start_server(base / "data", {"PACKHOUSE_PUBLIC_URL": PUBLIC})
    wheel = make_wheel(base, "ph-host", "1.0")
    with wheel.open("rb") as f:
        response = httpx.post(
            f"{running.url}/pypi/main/",
            data={":action": "file_upload", "name": "ph-host", "version": "1.0"},
            files={"content": (wheel.name, f)},
            auth=AUTH,
        )
    assert response.status_code == 200, response.text
    yield running
    stop_server(running)


def poisoned(server: RunningServer, path: str, **headers: str) -> httpx.Response:
    return httpx.get(
        server.url + path, headers={"Host": EVIL, **headers}, auth=AUTH, follow_redirects=False
    )


@pytest.mark.parametrize(
    "path", ["/pypi/main/pypi/ph-host/json", "/pypi/main/pypi/ph-host/1.0/json"]
)
def test_the_json_api_names_public_url_whatever_the_host(
    public_server: RunningServer, path: str
) -> None:
    for _ in range(2):  # the first answer is rendered, the second comes from the page cache
        response = poisoned(public_server, path)
        assert response.status_code == 200, response.text
        assert EVIL not in response.text
        urls = [f["url"] for f in response.json()["urls"]]
        assert urls
        assert all(u.startswith(f"{PUBLIC}/files/") for u in urls), urls
    plain = httpx.get(public_server.url + path, auth=AUTH)
    assert plain.json()["urls"][0]["url"].startswith(f"{PUBLIC}/files/")


@pytest.mark.parametrize(
    "path",
    [
        "/pypi/main",  # Starlette's trailing-slash redirect
        "/pypi/main/simple/PH_Host/",
        "/pypi/main/simple/ph-host",
        "/pypi/main/simple",
        "/pypi/main/",
        "/conda/main",
        "/conda/main/noarch",
        "/healthz/",
        "/api/v1",
        "/",
        "/ui",
        "/files/" + "0" * 64 + "/x.whl",
        "/nowhere",
    ],
)
def test_no_redirect_or_page_repeats_a_poisoned_host(
    public_server: RunningServer, path: str
) -> None:
    response = poisoned(public_server, path, Accept="text/html")
    location = response.headers.get("location", "")
    assert EVIL not in location, location
    assert EVIL not in response.text
    if location.startswith("http"):
        assert location.startswith(PUBLIC + "/"), location


def _style_source(html: str) -> str:
    (style,) = re.findall(r"<style>(.*?)</style>", html, re.S)
    return "'sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() + "'"


def test_html_index_pages_carry_a_policy_without_script(public_server: RunningServer) -> None:
    with httpx.Client(base_url=public_server.url, auth=AUTH) as client:
        for path in ("/pypi/main/simple/", "/pypi/main/simple/ph-host/"):
            for _ in range(2):  # rendered, then from the simple API's fast path
                response = client.get(path, headers={"Accept": "text/html"})
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/html")
                policy = response.headers["content-security-policy"]
                assert "default-src 'none'" in policy
                assert "frame-ancestors 'none'" in policy
                assert "script-src" not in policy  # so default-src 'none': no script at all
                assert response.headers["x-content-type-options"] == "nosniff"
        page = client.get("/conda/main/index.html")
        assert page.status_code == 200, page.text
        policy = page.headers["content-security-policy"]
        assert "script-src" not in policy
        assert _style_source(page.text) in policy  # conda's one inline style, by its hash
        assert page.headers["x-content-type-options"] == "nosniff"
        docs = client.get("/api/v1/docs")
        assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]


def test_every_response_says_nosniff(public_server: RunningServer) -> None:
    with httpx.Client(base_url=public_server.url, auth=AUTH) as client:
        simple = client.get(
            "/pypi/main/simple/ph-host/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        wheel = simple.json()["files"][0]
        answers = [
            simple,
            client.get("/pypi/main/pypi/ph-host/json"),
            client.get("/files/" + wheel["url"].split("/files/", 1)[1]),
            client.get("/conda/main/noarch/repodata.json"),
            client.get("/api/v1/repositories"),
            client.get("/healthz"),
            client.get("/nowhere"),
            httpx.get(public_server.url + "/pypi/main/simple/"),  # 401
        ]
        for response in answers:
            assert response.headers.get("x-content-type-options") == "nosniff", (
                response.url,
                response.status_code,
            )


def test_without_public_url_the_request_host_is_used(server: RunningServer, tmp_path: Path) -> None:
    """What an operator gets without public_url (documented): links follow the Host the
    client used, so a proxy in front must pass its own Host, or public_url must be set."""
    wheel = make_wheel(tmp_path, "ph-nopublic", "1.0")
    with wheel.open("rb") as f:
        httpx.post(
            f"{server.url}/pypi/main/",
            data={":action": "file_upload", "name": "ph-nopublic", "version": "1.0"},
            files={"content": (wheel.name, f)},
            auth=AUTH,
        ).raise_for_status()
    response = httpx.get(f"{server.url}/pypi/main/pypi/ph-nopublic/json", auth=AUTH)
    assert response.json()["urls"][0]["url"].startswith(f"{server.url}/files/")
