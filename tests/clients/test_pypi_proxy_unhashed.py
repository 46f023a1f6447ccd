"""Upstream files without a sha256 (old devpi, pypiserver, Artifactory, plain directory
listings): listed by the proxy with the md5 the upstream gave, or no hash, fetched on first
request and kept by the sha256 computed then; the first bytes kept win. And a download whose
client goes away mid-body is completed and kept.

Upstreams on loopback: a static tree served by `python -m http.server` (HTML pages whose
links carry no hash, or `#md5=`), and tests/upstream_server.py for what a static tree cannot
do (PEP 691 JSON without a sha256, bytes that change, a body held half way). Real pip and uv.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.clients.test_pypi_proxy import run, twine
from tests.conftest import (
    SIMPLE_JSON,
    VENV_BIN,
    RunningServer,
    file_path,
    make_venv,
    start_server,
    stop_server,
)
from tests.upstream_server import Document, StaticUpstream, directory_server, static_upstream

pytestmark = pytest.mark.clients

JSON_V1 = "application/vnd.pypi.simple.v1+json"
BIG = 9 * 1024 * 1024  # above what is checked before sending: passed on as it arrives


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def html_page(*links: str) -> bytes:
    anchors = "".join(
        f'<a href="{href}">{href.split("/")[-1].split("#")[0]}</a>\n' for href in links
    )
    return f"<!DOCTYPE html><html><body>\n{anchors}</body></html>\n".encode()


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    here = tmp_path_factory.mktemp("dists")
    make_wheel(here, "acme-app", "1.0", requires=["plainpkg"])
    make_wheel(here, "plainpkg", "1.0", requires=["md5pkg"])
    make_wheel(here, "md5pkg", "1.0")
    make_wheel(here, "otherpkg", "2.0")
    make_wheel(here, "jsonpkg", "3.0")
    return here


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, dists: Path) -> Iterator[tuple[str, Path]]:
    """A directory listing as old servers give it, served by http.server, and its log."""
    root = tmp_path_factory.mktemp("tree")
    packages = root / "packages"
    packages.mkdir()
    for name in ("plainpkg", "md5pkg", "otherpkg"):
        wheel = next(dists.glob(f"{name}-*.whl"))
        (packages / wheel.name).write_bytes(wheel.read_bytes())
        fragment = f"#md5={md5(wheel.read_bytes())}" if name == "md5pkg" else ""
        page = root / "simple" / name / "index.html"
        page.parent.mkdir(parents=True)
        page.write_bytes(html_page(f"../../packages/{wheel.name}{fragment}"))
    log = root.parent / f"{root.name}-http.log"
    with directory_server(root, log) as url:
        yield url, log


@pytest.fixture(scope="module")
def upstream(dists: Path) -> Iterator[StaticUpstream]:
    with static_upstream() as server:
        wheel = next(dists.glob("jsonpkg-*.whl"))
        server.documents["/simple/jsonpkg/"] = json_page(
            "jsonpkg", (wheel.name, {}, "/files/jsonpkg.whl")
        )
        server.documents["/files/jsonpkg.whl"] = Document(wheel.read_bytes())
        yield server


def json_page(project: str, *files: tuple[str, dict[str, str], str]) -> Document:
    """A PEP 691 page of (filename, hashes, url)."""
    body = {
        "meta": {"api-version": "1.1"},
        "name": project,
        "files": [{"filename": n, "url": u, "hashes": h} for n, h, u in files],
    }
    return Document(json.dumps(body).encode(), JSON_V1)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    tree: tuple[str, Path],
    upstream: StaticUpstream,
    dists: Path,
) -> Iterator[RunningServer]:
    env = {"PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS": '["127.0.0.1/32"]'}
    running = start_server(tmp_path_factory.mktemp("proxy") / "data", env)
    running.run_cli("repo", "create", "old", "--upstream", f"{tree[0]}/simple/")
    running.run_cli(
        "repo", "create", "static", "--upstream", f"{upstream.url}/simple/", "--ttl", "0"
    )
    running.run_cli("repo", "create", "all", "--bases", "main,old,static")
    twine(running, "main", next(dists.glob("acme_app-*.whl")))
    yield running
    stop_server(running)


def files_of(server: RunningServer, project: str, repo: str = "all") -> list[dict[str, object]]:
    with server.client() as client:
        response = client.get(f"/pypi/{repo}/simple/{project}/", headers=SIMPLE_JSON)
    assert response.status_code == 200, response.text
    return list(response.json()["files"])


def fetched(log: Path, filename: str) -> int:
    return sum(f"GET /packages/{filename} " in line for line in log.read_text().splitlines())


def test_pip_and_uv_install_files_whose_upstream_gives_no_sha256(
    server: RunningServer,
    tree: tuple[str, Path],
    upstream: StaticUpstream,
    dists: Path,
    tmp_path: Path,
) -> None:
    wheels = {p.name.split("-")[0]: p for p in dists.glob("*.whl")}
    plain, with_md5, other = (files_of(server, n)[0] for n in ("plainpkg", "md5pkg", "otherpkg"))
    # listed with what the upstream gave, at a URL that names no hash
    assert plain["hashes"] == {}
    assert other["hashes"] == {}
    assert with_md5["hashes"] == {"md5": md5(wheels["md5pkg"].read_bytes())}
    assert str(plain["url"]).startswith("../../../../files/upstream/")
    assert plain["core-metadata"] is False
    with server.client() as client:
        html = client.get("/pypi/all/simple/md5pkg/").text
    assert f"#md5={md5(wheels['md5pkg'].read_bytes())}" in html
    assert "#sha256=" not in html

    python = make_venv(tmp_path / "pip")
    run(python, "-m", "pip", "install", "--index-url", server.index_url("all"), "acme-app")
    run(python, "-c", "import acme_app, plainpkg, md5pkg")
    uv_python = make_venv(tmp_path / "uv")
    run(
        VENV_BIN / "uv", "pip", "install", "--python", uv_python,
        "--index-url", server.index_url("all"), "otherpkg", "jsonpkg",
    )  # fmt: skip
    run(uv_python, "-c", "import otherpkg, jsonpkg")

    # once fetched, the pages show the sha256 computed, at the usual URL, and the size
    for name in ("plainpkg", "md5pkg", "otherpkg", "jsonpkg"):
        (entry,) = files_of(server, name)
        data = wheels[name].read_bytes()
        assert entry["hashes"] == {"sha256": sha256(data)}, name
        assert entry["url"] == f"../../../../files/{sha256(data)}/{wheels[name].name}"
        assert entry["size"] == len(data)
    # a second install is served from the cache: each file was fetched once
    again = make_venv(tmp_path / "again")
    run(
        VENV_BIN / "uv", "pip", "install", "--python", again, "--no-cache",
        "--index-url", server.index_url("all"), "acme-app", "otherpkg", "jsonpkg",
    )  # fmt: skip
    for name in ("plainpkg", "md5pkg", "otherpkg"):
        assert fetched(tree[1], wheels[name].name) == 1, name
    assert len(upstream.asked("/files/jsonpkg.whl")) == 1
    # the old URL (a page read before the fetch) still gives the kept file
    with server.client() as client:
        response = client.get(file_path(plain))
    assert response.status_code == 200
    assert response.content == wheels["plainpkg"].read_bytes()
    assert response.headers["etag"] == f'"{sha256(response.content)}"'


def test_a_file_whose_md5_disagrees_is_a_502_and_nothing_is_kept(
    server: RunningServer, upstream: StaticUpstream
) -> None:
    name = "fibber-1.0-py3-none-any.whl"
    sent = b"not the bytes whose md5 the page gives"
    upstream.documents["/simple/fibber/"] = json_page(
        "fibber", (name, {"md5": md5(b"the real bytes")}, "/files/fibber.whl")
    )
    upstream.documents["/files/fibber.whl"] = Document(sent)
    (entry,) = files_of(server, "fibber", "static")
    with server.client() as client:
        for _ in range(2):  # nothing kept: the second request fetches again
            response = client.get(file_path(entry))
            assert response.status_code == 502
            assert "does not match the md5" in response.text
    assert len(upstream.asked("/files/fibber.whl")) == 2
    assert not list((server.data / "blobs").rglob(f"*{sha256(sent)}*"))
    assert not list((server.data / "tmp").glob("incoming-*"))
    (entry,) = files_of(server, "fibber", "static")
    assert entry["hashes"] == {"md5": md5(b"the real bytes")}


def test_the_first_bytes_kept_win_over_what_later_pages_say(
    server: RunningServer, upstream: StaticUpstream
) -> None:
    name = "shifty-1.0-py3-none-any.whl"
    first, later = b"the bytes first served", b"other bytes, served later"
    upstream.documents["/simple/shifty/"] = json_page("shifty", (name, {}, "/files/shifty.whl"))
    upstream.documents["/files/shifty.whl"] = Document(first)
    (entry,) = files_of(server, "shifty", "static")
    with server.client() as client:
        assert client.get(file_path(entry)).content == first
        # the upstream now serves other bytes under that name, and lists their sha256
        upstream.documents["/files/shifty.whl"] = Document(later)
        upstream.documents["/simple/shifty/"] = json_page(
            "shifty", (name, {"sha256": sha256(later)}, "/files/shifty.whl")
        )
        (entry,) = files_of(server, "shifty", "static")  # ttl 0: the page is fetched again
        assert entry["hashes"] == {"sha256": sha256(first)}
        assert client.get(file_path(entry)).content == first
        # a URL with the upstream's new sha256 is not one this proxy serves
        assert client.get(f"/files/{sha256(later)}/{name}").status_code == 404
    assert len(upstream.asked("/files/shifty.whl")) == 1
    assert f"now lists {name} with sha256 {sha256(later)}" in server.log_text()


def test_only_a_listed_file_is_fetched(server: RunningServer, upstream: StaticUpstream) -> None:
    upstream.documents["/files/unlisted.whl"] = Document(b"never listed")
    upstream.documents["/simple/unread/"] = json_page(
        "unread", ("unread-1.0-py3-none-any.whl", {}, "/files/unlisted.whl")
    )
    with server.client() as client:
        for path in (
            "/files/upstream/jsonpkg-9.9-py3-none-any.whl",  # not on the page
            "/files/upstream/unread-1.0-py3-none-any.whl",  # on a page no one has read
            "/files/upstream/nosuchproject-1.0-py3-none-any.whl",
            "/files/upstream/not-a-distribution.txt",
        ):
            assert client.get(path).status_code == 404, path
        anonymous = httpx.get(f"{server.url}/files/upstream/jsonpkg-3.0-py3-none-any.whl")
        assert anonymous.status_code == 401  # the proxies are private
    assert not upstream.asked("/files/unlisted.whl")
    assert not upstream.asked("/simple/unread/")  # a file request asks for no page
    assert not upstream.asked("9.9")


@pytest.mark.parametrize("hashed", [True, False], ids=["sha256-listed", "no-sha256"])
def test_a_download_whose_client_goes_away_mid_body_is_completed_and_kept(
    server: RunningServer, upstream: StaticUpstream, hashed: bool
) -> None:
    data = os.urandom(BIG)
    project = f"bulky{int(hashed)}"
    name, path = f"{project}-1.0-py3-none-any.whl", f"/files/{project}.whl"
    hashes = {"sha256": sha256(data)} if hashed else {}
    upstream.documents[f"/simple/{project}/"] = json_page(project, (name, hashes, path))
    hold = threading.Event()
    upstream.documents[path] = Document(data, hold=hold)
    (entry,) = files_of(server, project, "static")
    # a real client connection, cut after the first bytes of the body
    with server.client() as client, client.stream("GET", file_path(entry)) as response:
        assert response.status_code == 200
        first = next(response.iter_raw())
        assert data.startswith(first)
    # the connection is closed with the rest unread; then the upstream sends the rest
    hold.set()
    with server.client() as client:
        again = client.get(file_path(entry))  # as a retry would
    assert again.status_code == 200
    assert again.content == data
    assert len(upstream.asked(path)) == 1  # the abandoned fetch was completed and kept
    assert "completed after its client went away" in server.log_text()
