"""Conda routes on the real server: access, caching headers, uploads, hazards, concurrency,
`packhouse upload`, `packhouse conda patch` and `packhouse delete --format conda`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import zstandard

from tests.builders import load_module, make_wheel, synth
from tests.conftest import VENV_BIN, RunningServer

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "conda"


hazards = load_module(
    "conda_hazards", ROOT / "tests" / "formats" / "conda" / "test_conda_archive_hazards.py"
)
HAZARDS: dict[str, tuple[Callable[[], bytes], str, type, str]] = hazards.HAZARDS


@pytest.fixture(scope="module")
def setup(server: RunningServer) -> RunningServer:
    server.run_cli("repo", "create", "pub", "--format", "conda", "--public")
    server.run_cli("user", "add", "reader", input="reader-pass-123\n")
    server.run_cli("user", "add", "nobody", input="nobody-pass-123\n")
    server.run_cli("repo", "grant", "main", "reader", "read", "--format", "conda")
    return server


def http_cli(
    server: RunningServer, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """A `packhouse` command that talks HTTP (no --data)."""
    env = {k: v for k, v in server.env.items() if not k.startswith("PACKHOUSE_")}
    result = subprocess.run(
        [str(VENV_BIN / "packhouse"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"packhouse {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


_OPEN: list[httpx.Client] = []


def open_client(
    server: RunningServer, auth: tuple[str, str] | str | None = "admin"
) -> httpx.Client:
    client = server.client() if auth == "admin" else server.client(auth)  # type: ignore[arg-type]
    _OPEN.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def put(client: httpx.Client, repo: str, subdir: str, filename: str, data: bytes) -> httpx.Response:
    return client.put(f"/conda/{repo}/{subdir}/{filename}", content=data)


def records(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc["packages"], **doc["packages.conda"]}


PATHS = [
    "channeldata.json",
    "noarch/repodata.json",
    "noarch/repodata.json.zst",
    "noarch/repodata.json.bz2",
    "linux-64/current_repodata.json",
    "osx-arm64/repodata_from_packages.json",
    "noarch/run_exports.json",
    "noarch/repodata_shards.msgpack.zst",
    f"noarch/shards/{'0' * 64}.msgpack.zst",
    "noarch/anything-1.0-0.conda",
    "not_a_subdir/repodata.json",
]


@pytest.mark.parametrize("path", PATHS)
def test_private_channel_asks_for_credentials_on_every_path(
    setup: RunningServer, path: str
) -> None:
    for method in ("GET", "HEAD"):
        anonymous = httpx.request(method, f"{setup.url}/conda/main/{path}")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Basic")
        denied = httpx.request(
            method, f"{setup.url}/conda/main/{path}", auth=("nobody", "nobody-pass-123")
        )
        assert denied.status_code == 403
    assert (
        open_client(setup, None).put("/conda/main/noarch/x-1-0.conda", content=b"x").status_code
        == 401
    )
    reader = open_client(setup, ("reader", "reader-pass-123"))
    readable = reader.get("/conda/main/noarch/repodata.json")
    assert readable.status_code == 200
    assert readable.headers["cache-control"] == "private, no-cache"
    assert reader.put("/conda/main/noarch/x-1-0.conda", content=b"x").status_code == 403


def test_upload_appears_with_etags_zst_head_and_range(setup: RunningServer) -> None:
    admin = open_client(setup)
    anon = open_client(setup, None)
    empty = anon.get("/conda/pub/emscripten-wasm32/repodata.json")
    assert empty.status_code == 200
    assert records(empty.json()) == {}
    filename, data = synth.package_bytes("webpkg", "1.0")
    created = put(admin, "pub", "noarch", filename, data)
    assert created.status_code == 201, created.text
    again = put(admin, "pub", "noarch", filename, data)
    assert again.status_code == 200
    assert "same contents" in again.text
    page = anon.get("/conda/pub/noarch/repodata.json")
    assert filename in page.json()["packages.conda"]
    # conda trusts a max-age: the index files say to ask again, and the ETag makes that cheap
    assert page.headers["cache-control"] == "public, no-cache"
    etag = page.headers["etag"]
    assert not etag.startswith("W/")
    unchanged = anon.get("/conda/pub/noarch/repodata.json", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.headers["cache-control"] == "public, no-cache"
    for name in ("repodata.json.zst", "repodata_shards.msgpack.zst", "current_repodata.json"):
        assert anon.head(f"/conda/pub/noarch/{name}").headers["cache-control"] == "public, no-cache"
    # every index page follows one rule (web/deps.py REVALIDATE), channeldata.json too
    assert anon.get("/conda/pub/channeldata.json").headers["cache-control"] == "public, no-cache"
    head = anon.head("/conda/pub/noarch/repodata.json.zst")
    assert head.status_code == 200
    assert head.content == b""
    zst = anon.get("/conda/pub/noarch/repodata.json.zst").content
    assert int(head.headers["content-length"]) == len(zst)
    assert zstandard.decompress(zst) == page.content
    index = msgpack.unpackb(
        zstandard.decompress(anon.get("/conda/pub/noarch/repodata_shards.msgpack.zst").content)
    )
    shard = anon.get(f"/conda/pub/noarch/shards/{index['shards']['webpkg'].hex()}.msgpack.zst")
    assert "immutable" in shard.headers["cache-control"]
    got = anon.get(f"/conda/pub/noarch/{filename}", headers={"Range": "bytes=0-9"})
    assert got.status_code == 206
    assert got.content == data[:10]
    full = anon.get(f"/conda/pub/noarch/{filename}")
    assert full.content == data
    assert "immutable" in full.headers["cache-control"]
    assert anon.get(f"/conda/pub/linux-64/{filename}").status_code == 404
    other = synth.package_bytes("webpkg", "1.0", timestamp=5)[1]
    conflict = put(admin, "pub", "noarch", filename, other)
    assert conflict.status_code == 409
    assert "different contents" in conflict.text


def test_multipart_post_takes_the_subdir_from_the_package(setup: RunningServer) -> None:
    filename, data = synth.package_bytes("posted", "1.0", subdir="linux-64", extension=".tar.bz2")
    response = open_client(setup).post(
        "/conda/pub/upload", files={"file": (filename, data, "application/octet-stream")}
    )
    assert response.status_code == 201, response.text
    assert "pub/linux-64" in response.text
    assert (
        filename
        in open_client(setup, None).get("/conda/pub/linux-64/repodata.json").json()["packages"]
    )
    missing = open_client(setup).post("/conda/pub/upload", files={"other": ("x", b"x")})
    assert missing.status_code == 400


@pytest.mark.parametrize("case", sorted(HAZARDS))
def test_hazards_are_refused_and_nothing_is_stored(setup: RunningServer, case: str) -> None:
    make, filename, _, message = HAZARDS[case]
    blobs = setup.data / "blobs"
    before = sorted(p.name for p in blobs.rglob("*") if p.is_file())
    response = put(open_client(setup), "pub", "noarch", filename, make())
    assert 400 <= response.status_code < 500
    assert message in response.text
    assert sorted(p.name for p in blobs.rglob("*") if p.is_file()) == before
    assert list((setup.data / "tmp").glob("incoming-*")) == []
    assert filename not in open_client(setup, None).get("/conda/pub/noarch/repodata.json").text


def test_malformed_real_package_and_other_bad_requests(setup: RunningServer) -> None:
    bad = DATA / "malformed" / "ca-certificates-2024.7.4-hbcca054_0.conda"
    admin = open_client(setup)
    response = put(admin, "pub", "linux-64", bad.name, bad.read_bytes())
    assert response.status_code == 400
    assert "must hold exactly metadata.json" in response.text
    assert put(admin, "pub", "noarch", "x-1.0-0.conda", b"").status_code == 400
    assert put(admin, "pub", "noarch", "repodata.json", b"{}").status_code == 400
    assert put(admin, "pub", "Bad_Subdir", "x-1.0-0.conda", b"x").status_code == 404
    filename, data = synth.package_bytes("misplaced", "1.0", subdir="osx-64")
    wrong = put(admin, "pub", "linux-64", filename, data)
    assert wrong.status_code == 400
    assert "says subdir 'osx-64'" in wrong.text
    assert admin.get("/conda/pub/noarch/shards/nothex.msgpack.zst").status_code == 404
    assert admin.get("/conda/nope/noarch/repodata.json").status_code == 404


def test_patch_instructions_need_admin_and_patch_served_repodata(
    setup: RunningServer, tmp_path: Path
) -> None:
    admin = open_client(setup)
    filename, data = synth.package_bytes("patched", "1.0", depends=["old"])
    assert put(admin, "pub", "noarch", filename, data).status_code == 201
    doc = {"patch_instructions_version": 1, "packages.conda": {filename: {"depends": ["new"]}}}
    reader = open_client(setup, ("reader", "reader-pass-123"))
    url = "/conda/pub/noarch/patch_instructions.json"
    assert reader.put(url, content=json.dumps(doc)).status_code == 403
    assert admin.put(url, content=b"[1]").status_code == 400
    path = tmp_path / "patch_instructions.json"
    path.write_text(json.dumps(doc))
    result = http_cli(
        setup, "conda", "patch", "--repo", "pub", "--subdir", "noarch", str(path),
        "--url", setup.url, "--user", "admin", "--password", setup.admin_password,
    )  # fmt: skip
    assert "patch instructions set" in result.stdout
    anon = open_client(setup, None)
    served = anon.get("/conda/pub/noarch/repodata.json").json()
    assert served["packages.conda"][filename]["depends"] == ["new"]
    raw = anon.get("/conda/pub/noarch/repodata_from_packages.json").json()
    assert raw["packages.conda"][filename]["depends"] == ["old"]
    assert anon.get(url).json() == doc


def test_cli_upload_both_formats_and_delete_moves_to_removed(
    setup: RunningServer, tmp_path: Path
) -> None:
    setup.run_cli("repo", "create", "wheels")
    wheel = make_wheel(tmp_path, "ph-cli-demo", "1.0")
    conda = synth.make_package(tmp_path, "clipkg", "1.0", subdir="linux-64")
    old = DATA / "conda-index" / "archives" / "nano-2.4.1-0.tar.bz2"  # names no subdir
    common = ["--url", setup.url, "--user", "admin", "--password", setup.admin_password]
    result = http_cli(setup, "upload", "--repo", "pub", *common, str(conda), str(old))
    assert "uploaded 2 file(s)" in result.stdout
    result = http_cli(setup, "upload", "--repo", "wheels", *common, str(wheel))
    assert "uploaded 1 file(s)" in result.stdout
    assert "ph-cli-demo" in open_client(setup).get("/pypi/wheels/simple/").text
    osx = open_client(setup, None).get("/conda/pub/osx-64/repodata.json").json()
    assert "nano-2.4.1-0.tar.bz2" in osx["packages"]
    denied = http_cli(
        setup, "upload", "--repo", "pub", "--url", setup.url, "--user", "nobody",
        "--password", "nobody-pass-123", str(conda), check=False,
    )  # fmt: skip
    assert denied.returncode == 1
    assert "403" in denied.stderr
    setup.run_cli("delete", "pub", "clipkg", "--file", conda.name, "--format", "conda", "--yes")
    doc = open_client(setup, None).get("/conda/pub/linux-64/repodata.json").json()
    assert conda.name not in doc["packages.conda"]
    assert conda.name in doc["removed"]
    again = http_cli(setup, "upload", "--repo", "pub", *common, str(conda), check=False)
    assert again.returncode == 1
    assert "409" in again.stderr


def test_fifty_concurrent_uploads_while_a_reader_polls(setup: RunningServer) -> None:
    packages = [synth.package_bytes("burst", f"1.{i}") for i in range(50)]
    stop = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def poll() -> None:
        with setup.client(None) as client:
            while not stop.is_set():
                for path in ("repodata.json", "repodata.json.zst"):
                    response = client.get(f"/conda/pub/noarch/{path}")
                    body = response.content
                    if path.endswith(".zst"):
                        body = zstandard.decompress(body)
                    try:
                        doc = json.loads(body)
                    except ValueError as error:
                        errors.append(f"{path}: {error}")
                        continue
                    seen.append(sum(1 for f in doc["packages.conda"] if f.startswith("burst-")))

    def upload(item: tuple[str, bytes]) -> None:
        with setup.client() as client:
            response = put(client, "pub", "noarch", *item)
            if response.status_code != 201:
                errors.append(f"{item[0]}: {response.status_code} {response.text}")

    reader = threading.Thread(target=poll)
    reader.start()
    uploaders = [threading.Thread(target=upload, args=(item,)) for item in packages]
    for thread in uploaders:
        thread.start()
    for thread in uploaders:
        thread.join()
    stop.set()
    reader.join()
    assert errors == []
    assert seen
    assert seen == sorted(seen)  # every response is a whole, never an older, document
    final = open_client(setup, None).get("/conda/pub/noarch/repodata.json").json()
    assert {f for f in final["packages.conda"] if f.startswith("burst-")} == {
        name for name, _ in packages
    }


def test_bad_patch_instructions_answer_400_listing_every_problem(setup: RunningServer) -> None:
    admin = open_client(setup)
    filename, data = synth.package_bytes("badpatch", "1.0", subdir="linux-32")
    assert put(admin, "pub", "linux-32", filename, data).status_code == 201
    url = "/conda/pub/linux-32/patch_instructions.json"
    doc = {
        "packages": {"badpatch-1.0-0.conda": 5},
        "packages.conda": {"badpatch-1.0-0.conda": {"depends": 5, "name": None}},
    }
    refused = admin.put(url, content=json.dumps(doc))
    assert refused.status_code == 400
    assert "must be an object of field changes, not int" in refused.text
    assert ".depends must be a list of strings" in refused.text
    assert ".name cannot be patched" in refused.text
    anon = open_client(setup, None)
    assert anon.get(url).json() == {}
    for path in (
        "repodata.json",
        "current_repodata.json",
        "repodata_shards.msgpack.zst",
        "index.html",
    ):
        assert anon.get(f"/conda/pub/linux-32/{path}").status_code == 200, path
    assert anon.get("/conda/pub/channeldata.json").status_code == 200
    record = anon.get("/conda/pub/linux-32/repodata.json").json()["packages.conda"][filename]
    assert record["depends"] == []


def test_patch_instructions_over_the_cap_are_413(setup: RunningServer) -> None:
    admin = open_client(setup)
    url = "/conda/pub/noarch/patch_instructions.json"
    big = b" " * (16 * 1024 * 1024 + 1)
    declared = admin.put(url, content=big)
    assert declared.status_code == 413
    assert "larger than the limit of 16777216 bytes" in declared.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while streaming
        for _ in range(17):
            yield b" " * (1024 * 1024)

    streamed = admin.put(url, content=chunks())
    assert streamed.status_code == 413
    assert "patch instructions" in streamed.text


def test_api_multipart_upload_answers_json(setup: RunningServer) -> None:
    filename, data = synth.package_bytes("apipkg", "2.0", subdir="linux-64")
    url = "/api/v1/repositories/conda/pub/packages"
    files = {"file": (filename, data, "application/octet-stream")}
    assert open_client(setup, None).post(url, files=files).status_code == 401
    denied = open_client(setup, ("nobody", "nobody-pass-123")).post(url, files=files)
    assert denied.status_code == 403
    admin = open_client(setup)
    created = admin.post(url, files=files)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body == {
        "filename": filename,
        "subdir": "linux-64",
        "name": "apipkg",
        "version": "2.0",
        "sha256": hashlib.sha256(data).hexdigest(),
        "created": True,
    }
    again = admin.post(url, files=files)
    assert again.status_code == 200
    assert again.json()["created"] is False
    other = synth.package_bytes("apipkg", "2.0", subdir="linux-64", timestamp=9)[1]
    conflict = admin.post(url, files={"file": (filename, other)})
    assert conflict.status_code == 409
    assert "different contents" in conflict.json()["detail"]
    missing = admin.post(url, files={"other": ("x", b"x")})
    assert missing.status_code == 400
    assert "no 'file' field" in missing.json()["detail"]
    placed = synth.package_bytes("apiplaced", "1.0", subdir="osx-64")
    wrong = admin.post(url, files={"file": placed}, data={"subdir": "linux-64"})
    assert wrong.status_code == 400
    assert admin.post("/api/v1/repositories/conda/nope/packages", files=files).status_code == 404
    doc = open_client(setup, None).get("/conda/pub/linux-64/repodata.json").json()
    assert filename in doc["packages.conda"]
    assert list((setup.data / "tmp").glob("incoming-*")) == []
    spec = open_client(setup, None).get("/api/v1/openapi.json").json()
    operation = spec["paths"]["/repositories/conda/{name}/packages"]["post"]
    assert "multipart/form-data" in operation["requestBody"]["content"]
    assert "201" in operation["responses"]


@pytest.mark.parametrize("path", ["", "index.html", "noarch/", "linux-64/", "x/y/z", "upload"])
def test_channel_listings_and_unknown_paths_check_credentials_first(
    setup: RunningServer, path: str
) -> None:
    for method in ("GET", "HEAD", "PUT", "POST"):
        anonymous = httpx.request(method, f"{setup.url}/conda/main/{path}")
        if (method, path) == ("POST", "upload"):
            continue  # the upload route itself: asks for upload rights
        assert anonymous.status_code == 401, (method, path)
        denied = httpx.request(
            method, f"{setup.url}/conda/main/{path}", auth=("nobody", "nobody-pass-123")
        )
        assert denied.status_code == 403, (method, path)


def test_index_html_listings_and_a_404_that_names_what_exists(setup: RunningServer) -> None:
    admin = open_client(setup)
    filename, data = synth.package_bytes("listed", "1.0", subdir="win-64")
    assert put(admin, "main", "win-64", filename, data).status_code == 201
    reader = open_client(setup, ("reader", "reader-pass-123"))
    for path in ("/conda/main/", "/conda/main/index.html"):
        page = reader.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<a href="win-64/">win-64</a>' in page.text
        assert "listed" in page.text
    for path in ("/conda/main/win-64/", "/conda/main/win-64/index.html"):
        page = reader.get(path)
        assert page.status_code == 200
        assert f'<a href="{filename}">{filename}</a>' in page.text
        assert '<a href="repodata.json">' in page.text
    empty = reader.get("/conda/main/linux-ppc64le/")
    assert empty.status_code == 200
    assert ".conda" not in empty.text
    assert ".tar.bz2" not in empty.text
    missing = reader.get("/conda/main/win-64/deeper/still")
    assert missing.status_code == 404
    assert "channeldata.json" in missing.text
    assert "/conda/main/<subdir>/repodata.json" in missing.text
    assert reader.post("/conda/main/win-64/repodata.json").status_code == 404
    assert reader.get("/conda/main/Bad_Subdir/").status_code == 404


def test_server_log_has_no_unexpected_error(setup: RunningServer) -> None:
    assert "unexpected error" not in setup.log_text()
