"""Bad uploads get a clear 4xx, and nothing is stored. Against the real server process."""

from __future__ import annotations

import base64
import io
import random
import socket
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel, metadata_text
from tests.conftest import ADMIN_PASSWORD, RunningServer, start_server, stop_server

AUTH = ("admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server whose upload limit is 200 kB."""
    data = tmp_path_factory.mktemp("small") / "data"
    running = start_server(data, {"PACKHOUSE_MAX_UPLOAD_BYTES": "200000"})
    yield running
    stop_server(running)


def stored(server: RunningServer) -> tuple[int, list[str]]:
    """(number of blobs, leftover temporary files)."""
    root = server.data / "blobs"
    blobs = [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"]
    tmp = [p.name for p in (server.data / "tmp").iterdir()]
    tmp += [p.name for p in (server.data / "blobs" / "tmp").iterdir()]
    return len(blobs), tmp


def multipart(fields: dict[str, str], filename: str | None, content: bytes) -> tuple[bytes, str]:
    """A raw multipart body, so filenames reach the server exactly as written."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for key, value in fields.items():
        out.write(f"--{boundary}\r\n".encode())
        out.write(f'Content-Disposition: form-data; name="{key}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    if filename is not None:
        out.write(f"--{boundary}\r\n".encode())
        out.write(
            b'Content-Disposition: form-data; name="content"; filename="'
            + filename.encode("utf-8", "surrogateescape")
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def post(
    server: RunningServer,
    filename: str | None,
    content: bytes,
    *,
    fields: dict[str, str] | None = None,
    auth: tuple[str, str] | None = AUTH,
    repo: str = "main",
) -> httpx.Response:
    form = {":action": "file_upload", "name": "ph-bad", "version": "1.0"}
    form.update(fields or {})
    body, content_type = multipart(
        {k: v for k, v in form.items() if v is not None}, filename, content
    )
    return httpx.post(
        f"{server.url}/pypi/{repo}/",
        content=body,
        headers={"Content-Type": content_type},
        auth=auth,
        timeout=60,
    )


def refused(server: RunningServer, response: httpx.Response, status: int, *needles: str) -> None:
    assert response.status_code == status, response.text
    for needle in needles:
        assert needle in response.text, response.text
    assert stored(server) == (0, [])


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    return make_wheel(tmp_path, "ph-bad", "1.0")


@pytest.mark.parametrize(
    ("filename", "needle"),
    [
        ("../ph_bad-1.0-py3-none-any.whl", ".."),
        ("sub/ph_bad-1.0-py3-none-any.whl", "/"),
        ("sub\\ph_bad-1.0-py3-none-any.whl", "\\"),
        ("ph_bad\x00-1.0-py3-none-any.whl", "NUL"),
        ("ph_bad\r-1.0-py3-none-any.whl", "malformed"),  # a bare CR breaks the part's header
        ("ph_bad\n-1.0-py3-none-any.whl", "line break"),
        ("ph_bad-1.0.egg", "accepted"),
        ("ph_bad-1.0-py3-none-any.whl.exe", "accepted"),
        ("-bad-1.0-py3-none-any.whl", "name"),
        ("ph_bad-1.0.0junk!-py3-none-any.whl", "version"),
    ],
)
def test_unsafe_or_invalid_filenames(
    server: RunningServer, wheel: Path, filename: str, needle: str
) -> None:
    refused(server, post(server, filename, wheel.read_bytes()), 400, needle)


def test_form_name_differs_from_filename(server: RunningServer, wheel: Path) -> None:
    response = post(server, wheel.name, wheel.read_bytes(), fields={"name": "other"})
    refused(server, response, 400, "does not match")


def test_metadata_differs_from_filename(server: RunningServer, tmp_path: Path) -> None:
    liar = make_wheel(tmp_path, "ph-bad", "1.0", metadata=metadata_text("ph-other", "1.0"))
    refused(server, post(server, liar.name, liar.read_bytes()), 400, "ph-other")


def test_metadata_version_differs_from_filename(server: RunningServer, tmp_path: Path) -> None:
    liar = make_wheel(tmp_path, "ph-bad", "1.0", metadata=metadata_text("ph-bad", "2.0"))
    refused(server, post(server, liar.name, liar.read_bytes()), 400, "2.0")


def test_wrong_sha256(server: RunningServer, wheel: Path) -> None:
    response = post(server, wheel.name, wheel.read_bytes(), fields={"sha256_digest": "ab" * 32})
    refused(server, response, 400, "sha256_digest", "does not match")


def test_multipart_without_closing_boundary(server: RunningServer, wheel: Path) -> None:
    body, content_type = multipart({":action": "file_upload"}, wheel.name, wheel.read_bytes())
    cut = body[: body.rindex(b"--") - 40]
    response = httpx.post(
        f"{server.url}/pypi/main/", content=cut, headers={"Content-Type": content_type}, auth=AUTH
    )
    refused(server, response, 400, "cut short")


def test_body_shorter_than_content_length(server: RunningServer, wheel: Path) -> None:
    body, content_type = multipart(
        {":action": "file_upload", "name": "ph-bad", "version": "1.0"}, wheel.name,
        wheel.read_bytes(),
    )  # fmt: skip
    credentials = "Basic " + base64.b64encode(":".join(AUTH).encode()).decode()
    host, port = server.host.split(":")
    head = (
        f"POST /pypi/main/ HTTP/1.1\r\nHost: {server.host}\r\nAuthorization: {credentials}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body[: len(body) // 2])
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert not reply.startswith(b"HTTP/1.1 2")
    # The server drops the half-received file; give it a moment to notice the disconnect.
    with httpx.Client(base_url=server.url, auth=AUTH) as client:
        for _ in range(50):
            if stored(server) == (0, []):
                break
            client.get("/healthz")
    assert stored(server) == (0, [])


def _zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we want
        with zipfile.ZipFile(out, "w", method) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return out.getvalue()


def _wheel_members(extra: list[tuple[str, bytes]] | None = None) -> list[tuple[str, bytes]]:
    info = "ph_bad-1.0.dist-info"
    return [
        ("ph_bad.py", b"x = 1\n"),
        (f"{info}/METADATA", metadata_text("ph-bad", "1.0").encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info}/RECORD", b""),
        *(extra or []),
    ]


def test_zip_bomb(server: RunningServer) -> None:
    bomb = _zip(_wheel_members([("ph_bad/zeros.bin", b"\0" * 60_000_000)]))
    refused(server, post(server, "ph_bad-1.0-py3-none-any.whl", bomb), 400, "ratio")


def test_duplicate_zip_members(server: RunningServer) -> None:
    twice = _zip(_wheel_members([("ph_bad.py", b"x = 2\n")]))
    refused(server, post(server, "ph_bad-1.0-py3-none-any.whl", twice), 400, "more than one")


def test_member_escaping_the_archive(server: RunningServer) -> None:
    escaping = _zip(_wheel_members([("../../etc/evil", b"x")]))
    refused(server, post(server, "ph_bad-1.0-py3-none-any.whl", escaping), 400, "..")


def test_unsupported_compression(server: RunningServer) -> None:
    lzma = _zip(_wheel_members(), zipfile.ZIP_LZMA)
    refused(server, post(server, "ph_bad-1.0-py3-none-any.whl", lzma), 400, "compression")


@pytest.mark.parametrize("missing", ["METADATA", "WHEEL", "RECORD"])
def test_wheel_missing_a_required_file(server: RunningServer, tmp_path: Path, missing: str) -> None:
    broken = make_wheel(tmp_path, "ph-bad", "1.0", omit=[missing])
    refused(server, post(server, broken.name, broken.read_bytes()), 400, missing)


def test_not_a_zip(server: RunningServer) -> None:
    refused(server, post(server, "ph_bad-1.0-py3-none-any.whl", b"not a zip at all"), 400, "zip")


def test_invalid_version_in_form(server: RunningServer, wheel: Path) -> None:
    response = post(server, wheel.name, wheel.read_bytes(), fields={"version": "not a version"})
    refused(server, response, 400, "version")


@pytest.mark.parametrize("field", ["name", "version"])
def test_missing_form_field(server: RunningServer, wheel: Path, field: str) -> None:
    body_fields = {":action": "file_upload", "name": "ph-bad", "version": "1.0"}
    del body_fields[field]
    body, content_type = multipart(body_fields, wheel.name, wheel.read_bytes())
    response = httpx.post(
        f"{server.url}/pypi/main/", content=body, headers={"Content-Type": content_type}, auth=AUTH
    )
    refused(server, response, 400, f"no '{field}' field")


def test_missing_file(server: RunningServer) -> None:
    refused(server, post(server, None, b""), 400, "'content'")


def test_missing_action(server: RunningServer, wheel: Path) -> None:
    body, content_type = multipart({"name": "ph-bad", "version": "1.0"}, wheel.name, b"x")
    response = httpx.post(
        f"{server.url}/pypi/main/", content=body, headers={"Content-Type": content_type}, auth=AUTH
    )
    refused(server, response, 400, ":action")


def test_not_multipart(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/pypi/main/", json={"hello": 1}, auth=AUTH)
    refused(server, response, 400, "multipart/form-data")


def test_upload_to_a_missing_repository(server: RunningServer, wheel: Path) -> None:
    response = post(server, wheel.name, wheel.read_bytes(), repo="nope")
    refused(server, response, 404, "nope")


def test_no_credentials(server: RunningServer, wheel: Path) -> None:
    response = post(server, wheel.name, wheel.read_bytes(), auth=None)
    refused(server, response, 401)
    assert response.headers["www-authenticate"].startswith("Basic realm=")


def test_wrong_password(server: RunningServer, wheel: Path) -> None:
    response = post(server, wheel.name, wheel.read_bytes(), auth=("admin", "wrong"))
    refused(server, response, 401, "wrong")
    assert "wrong" not in response.headers.get("www-authenticate", "x wrong")


def test_oversize_file_while_streaming(small_server: RunningServer, tmp_path: Path) -> None:
    big = make_wheel(
        tmp_path, "ph-bad", "1.0", extra_members={"ph_bad/blob.bin": random.randbytes(300_000)}
    )
    with zipfile.ZipFile(big) as zf:
        assert zf.getinfo("ph_bad/blob.bin").file_size > 200_000
    refused(small_server, post(small_server, big.name, big.read_bytes()), 413, "limit")


def test_no_error_left_anything_behind(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, auth=AUTH) as client:
        index = client.get(
            "/pypi/main/simple/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
    assert index.json()["projects"] == []
    assert stored(server) == (0, [])


def test_the_count_sees_what_an_honest_upload_stores(server: RunningServer, wheel: Path) -> None:
    # last: proves the "nothing stored" checks above could fail
    with httpx.Client(base_url=server.url, auth=AUTH) as client:
        response = client.post(
            "/pypi/main/",
            data={":action": "file_upload", "name": "ph-bad", "version": "1.0"},
            files={"content": (wheel.name, wheel.read_bytes())},
        )
    assert response.status_code == 200, response.text
    assert stored(server) == (2, [])  # the wheel and its .metadata
