"""The PyPI routes' HTTP behaviour, in-process against the real app and in-memory stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from packhouse.auth.passwords import hash_password
from packhouse.db import user_store
from packhouse.services.repos import create_repository
from packhouse.types import Format
from packhouse.web.app import create_app
from packhouse.wiring import Services
from tests.builders import make_sdist, make_wheel
from tests.conftest import file_path

AUTH = ("alice", "alice-password")
JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def client(memory_services: Services, tmp_path: Path) -> Iterator[TestClient]:
    svc = memory_services
    with svc.ctx.db.write() as conn:
        user_store.create_user(conn, "alice", hash_password(AUTH[1]), is_admin=True)
    create_repository(svc.ctx, actor="t", name="main", fmt=Format.PYPI)
    with TestClient(create_app(svc.ctx.settings, svc)) as test_client:
        for path in (
            make_wheel(tmp_path, "Demo_Pkg", "1.0", requires_python="<4,>=3.8"),
            make_sdist(tmp_path, "demo-pkg", "1.1"),
        ):
            name, version = path.name.split("-")[:2]
            response = test_client.post(
                "/pypi/main/",
                auth=AUTH,
                data={
                    ":action": "file_upload",
                    "name": name,
                    "version": version.removesuffix(".tar.gz"),
                },
                files={"content": (path.name, path.read_bytes())},
            )
            assert response.status_code == 200, response.text
        yield test_client


def test_non_normalised_names_redirect_to_the_normalised_url(client: TestClient) -> None:
    for path in ("/pypi/main/simple/Demo_Pkg/", "/pypi/main/simple/demo-pkg"):
        response = client.get(path + "?format=" + JSON, auth=AUTH, follow_redirects=False)
        assert response.status_code == 301
        assert response.headers["location"] == f"/pypi/main/simple/demo-pkg/?format={JSON}"


def test_content_negotiation(client: TestClient) -> None:
    cases = {
        None: "text/html",
        "text/html": "text/html",
        "application/vnd.pypi.simple.v1+html": "application/vnd.pypi.simple.v1+html",
        "application/vnd.pypi.simple.latest+json": JSON,
        f"{JSON};q=0.5, text/html;q=0.9": "text/html",
        f"{JSON}, text/html;q=0.1": JSON,
    }
    for accept, expected in cases.items():
        headers = {"Accept": accept} if accept else {}
        response = client.get("/pypi/main/simple/demo-pkg/", auth=AUTH, headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == expected, accept
        assert "Accept" in response.headers["vary"]
    by_param = client.get(f"/pypi/main/simple/demo-pkg/?format={JSON}", auth=AUTH)
    assert by_param.headers["content-type"] == JSON
    refused = client.get(
        "/pypi/main/simple/demo-pkg/", auth=AUTH, headers={"Accept": "application/xml"}
    )
    assert refused.status_code == 406
    assert JSON in refused.text


def test_json_and_html_list_the_same_files(client: TestClient) -> None:
    data = client.get("/pypi/main/simple/demo-pkg/", auth=AUTH, headers={"Accept": JSON}).json()
    html = client.get("/pypi/main/simple/demo-pkg/", auth=AUTH).text
    assert data["meta"]["api-version"] == "1.1"
    assert data["versions"] == ["1.0", "1.1"]
    for f in data["files"]:
        assert f"{f['url']}#sha256={f['hashes']['sha256']}" in html
    assert 'data-requires-python="&lt;4,&gt;=3.8"' in html


def test_etag_and_serial_headers_and_304(client: TestClient) -> None:
    first = client.get("/pypi/main/simple/demo-pkg/", auth=AUTH)
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert int(first.headers["x-pypi-last-serial"]) > 0
    again = client.get("/pypi/main/simple/demo-pkg/", auth=AUTH, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    head = client.head("/pypi/main/simple/demo-pkg/", auth=AUTH)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(first.content))
    assert head.headers["etag"] == etag


def test_index_pages_revalidate_and_a_304_after_an_unrelated_upload_renders_nothing(
    client: TestClient, memory_services: Services, tmp_path: Path
) -> None:
    """Simple pages (HTML and JSON, project and list) and the JSON API say `no-cache`, so
    installers ask again with If-None-Match. After another project's upload moved the serial,
    the 304 comes from the page kept in the cache (its stamp is unchanged): same object."""
    paths = ["/pypi/main/simple/", "/pypi/main/simple/demo-pkg/", "/pypi/main/pypi/demo-pkg/json"]
    etags = {}
    for path in paths:
        for accept in ("text/html", JSON):
            page = client.get(path, auth=AUTH, headers={"Accept": accept})
            assert page.status_code == 200
            assert page.headers["cache-control"] == "private, no-cache", path
            etags[path, accept] = page.headers["etag"]
    kept = dict(memory_services.ctx.pages._entries)
    other = make_wheel(tmp_path, "other-pkg", "1.0")
    uploaded = client.post(
        "/pypi/main/",
        auth=AUTH,
        data={":action": "file_upload", "name": "other-pkg", "version": "1.0"},
        files={"content": (other.name, other.read_bytes())},
    )
    assert uploaded.status_code == 200
    for path in paths[1:]:
        for accept in ("text/html", JSON):
            again = client.get(
                path, auth=AUTH, headers={"Accept": accept, "If-None-Match": etags[path, accept]}
            )
            assert again.status_code == 304, path
            assert again.headers["cache-control"] == "private, no-cache"
    for key, entry in memory_services.ctx.pages._entries.items():
        if key in kept and key[0] != "pypi-index":
            assert entry.page is kept[key].page, key
    listing = client.get(
        "/pypi/main/simple/", auth=AUTH, headers={"If-None-Match": etags[paths[0], "text/html"]}
    )
    assert listing.status_code == 200  # the project list did change


def test_index_max_age_above_zero_is_sent_as_max_age(memory_services: Services) -> None:
    memory_services.ctx.settings.index_max_age = 60
    with memory_services.ctx.db.write() as conn:
        user_store.create_user(conn, "alice", hash_password(AUTH[1]), is_admin=True)
    create_repository(memory_services.ctx, actor="t", name="pub", fmt=Format.PYPI)
    with TestClient(create_app(memory_services.ctx.settings, memory_services)) as test_client:
        page = test_client.get("/pypi/pub/simple/", auth=AUTH)
    assert page.status_code == 200
    assert page.headers["cache-control"].endswith(", max-age=60")


def test_project_list(client: TestClient) -> None:
    data = client.get("/pypi/main/simple/", auth=AUTH, headers={"Accept": JSON}).json()
    assert data["projects"] == [{"name": "demo-pkg"}]
    assert 'href="demo-pkg/"' in client.get("/pypi/main/simple/", auth=AUTH).text


def test_unknown_project_and_repository_are_404_for_those_allowed_to_read(
    client: TestClient,
) -> None:
    assert client.get("/pypi/main/simple/nope/", auth=AUTH).status_code == 404
    assert client.get("/pypi/other/simple/nope/", auth=AUTH).status_code == 404


def test_private_repository_answers_401_everywhere_without_credentials(
    client: TestClient,
) -> None:
    for path in (
        "/pypi/main/simple/",
        "/pypi/main/simple/demo-pkg/",
        "/pypi/main/simple/does-not-exist/",
        "/pypi/main/pypi/demo-pkg/json",
    ):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Basic")


def test_json_api(client: TestClient) -> None:
    project = client.get("/pypi/main/pypi/demo-pkg/json", auth=AUTH).json()
    assert project["info"]["version"] == "1.1"
    assert set(project["releases"]) == {"1.0", "1.1"}
    assert project["last_serial"] > 0
    release = client.get("/pypi/main/pypi/Demo_Pkg/1.0/json", auth=AUTH).json()
    assert release["info"]["requires_python"] == "<4,>=3.8"
    assert "releases" not in release
    [url] = release["urls"]
    assert url["packagetype"] == "bdist_wheel"
    assert url["url"].startswith("http://testserver/files/")
    assert client.get(url["url"], auth=AUTH).status_code == 200
    assert client.get("/pypi/main/pypi/demo-pkg/9.9/json", auth=AUTH).status_code == 404


def test_metadata_file_is_served_for_wheels_only(client: TestClient) -> None:
    data = client.get("/pypi/main/simple/demo-pkg/", auth=AUTH, headers={"Accept": JSON}).json()
    by_name = {f["filename"]: f for f in data["files"]}
    wheel = by_name["demo_pkg-1.0-py3-none-any.whl"]
    url = file_path(wheel)
    metadata = client.get(url + ".metadata", auth=AUTH)
    assert metadata.status_code == 200
    import hashlib

    assert hashlib.sha256(metadata.content).hexdigest() == wheel["core-metadata"]["sha256"]
    sdist = by_name["demo_pkg-1.1.tar.gz"]
    sdist_url = file_path(sdist)
    assert client.get(sdist_url + ".metadata", auth=AUTH).status_code == 404


def test_files_answer_strangers_the_same_whether_the_hash_is_stored_or_not(
    client: TestClient,
) -> None:
    data = client.get("/pypi/main/simple/demo-pkg/", auth=AUTH, headers={"Accept": JSON}).json()
    stored = file_path(data["files"][0])
    unknown = f"/files/{'0' * 64}/demo_pkg-1.0-py3-none-any.whl"
    for path in (stored, unknown):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.text == "401 this file is not public: send credentials\n"
    assert client.get(unknown, auth=AUTH).status_code == 404


def test_every_path_under_a_private_repository_asks_strangers_for_credentials(
    client: TestClient,
) -> None:
    for method, path in [
        ("GET", "/pypi/main/"),
        ("GET", "/pypi/main/pypi/x/"),
        ("GET", "/pypi/main/whatever/deep/path"),
        ("PUT", "/pypi/main/simple/x/"),
        ("DELETE", "/pypi/main/"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
    assert client.get("/pypi/main/", auth=AUTH, follow_redirects=False).headers["location"] == (
        "/pypi/main/simple/"
    )
    lost = client.get("/pypi/main/whatever", auth=AUTH)
    assert lost.status_code == 404
    assert "/pypi/main/simple/" in lost.text


def test_streamed_files_have_length_ranges_and_head(client: TestClient) -> None:
    # The in-memory store has no local files: this is the path S3 takes without redirects.
    data = client.get("/pypi/main/simple/demo-pkg/", auth=AUTH, headers={"Accept": JSON}).json()
    url = file_path(data["files"][0])
    whole = client.get(url, auth=AUTH)
    size = len(whole.content)
    assert whole.headers["content-length"] == str(size)
    assert whole.headers["accept-ranges"] == "bytes"
    head = client.head(url, auth=AUTH)
    assert head.headers["content-length"] == str(size)
    assert head.content == b""
    cases = {
        "bytes=0-9": (206, whole.content[:10]),
        "bytes=10-": (206, whole.content[10:]),
        "bytes=-5": (206, whole.content[-5:]),
        f"bytes=5-{size + 100}": (206, whole.content[5:]),
        "bytes=9-2": (200, whole.content),  # invalid: ignored, as RFC 9110 allows
        "bytes=0-1,4-5": (200, whole.content),  # several parts: sent whole
        "items=0-1": (200, whole.content),
        "Bytes=0-1": (206, whole.content[:2]),  # the unit is case-insensitive
        f"bytes={size + 5}-{size + 1}": (200, whole.content),  # last before first: ignored
        "bytes=0-" + "9" * 25: (206, whole.content),  # a last position past the end: clamped
    }
    for header, (status, body) in cases.items():
        part = client.get(url, auth=AUTH, headers={"Range": header})
        assert (part.status_code, part.content) == (status, body), header
    part = client.get(url, auth=AUTH, headers={"Range": "bytes=0-9"})
    assert part.headers["content-range"] == f"bytes 0-9/{size}"
    beyond = client.get(url, auth=AUTH, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"


def test_paths_without_their_slash_redirect_and_wrong_methods_get_405(
    client: TestClient,
) -> None:
    index = client.get("/pypi/main/simple?format=" + JSON, auth=AUTH, follow_redirects=False)
    assert index.status_code == 308
    assert index.headers["location"] == f"/pypi/main/simple/?format={JSON}"
    legacy = client.post("/pypi/main/legacy", auth=AUTH, follow_redirects=False)
    assert (legacy.status_code, legacy.headers["location"]) == (308, "/pypi/main/legacy/")
    wrong = client.post("/pypi/main/simple/", auth=AUTH)
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD"
    assert client.get("/pypi/main/simple").status_code == 401  # strangers learn nothing


def test_a_body_past_every_limit_is_refused_even_without_content_length(
    client: TestClient,
) -> None:
    """Parts that are read past (a signature) still count: a chunked body can't go on forever."""

    def body() -> Iterator[bytes]:
        yield (
            b'--b\r\nContent-Disposition: form-data; name="gpg_signature"; filename="x.asc"\r\n\r\n'
        )
        for _ in range(130):  # 130 MiB: past 100 MiB of file, 16 MiB of fields and slack
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    response = client.post(
        "/pypi/main/",
        content=body(),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        auth=AUTH,
    )
    assert response.status_code == 413
    assert "max_upload_bytes" in response.text
