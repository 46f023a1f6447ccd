"""The real server storing blobs in a real S3 server (SeaweedFS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.clients.test_pypi_clients import installed_version, pip_install, twine_upload
from tests.conftest import (
    RunningServer,
    S3Server,
    file_path,
    make_venv,
    simple_files,
    start_server,
    stop_server,
)
from tests.web.test_upload_faults import Forwarder, upload

pytestmark = [pytest.mark.clients, pytest.mark.s3]


@pytest.fixture
def s3_server(tmp_path: Path, seaweedfs: S3Server) -> Iterator[tuple[RunningServer, str]]:
    prefix = seaweedfs.new_prefix()
    running = start_server(
        tmp_path / "data",
        {
            "PACKHOUSE_STORAGE": "s3",
            "PACKHOUSE_S3__ENDPOINT_URL": seaweedfs.endpoint,
            "PACKHOUSE_S3__BUCKET": seaweedfs.bucket,
            "PACKHOUSE_S3__PREFIX": prefix,
            "PACKHOUSE_S3__ACCESS_KEY_ID": "packhouse-tests",
            "PACKHOUSE_S3__SECRET_ACCESS_KEY": "packhouse-tests",
        },
    )
    yield running, prefix
    stop_server(running)


def test_upload_install_download_and_delete_with_blobs_in_s3(
    s3_server: tuple[RunningServer, str], seaweedfs: S3Server, tmp_path: Path
) -> None:
    server, prefix = s3_server
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = make_wheel(dist, "ph-in-s3", "1.0")
    twine_upload(server, wheel)

    assert len(seaweedfs.keys(prefix)) == 2  # the wheel and its PEP 658 metadata file
    assert not (server.data / "blobs").exists()

    python = make_venv(tmp_path / "venv")
    pip_install(server, python, "ph-in-s3")
    assert installed_version(python, "ph_in_s3") == "1.0"
    with server.client() as client:
        url = file_path(simple_files(client, "ph-in-s3")[0])
        whole = client.get(url)
        assert whole.content == wheel.read_bytes()
        assert whole.headers["content-length"] == str(wheel.stat().st_size)
        part = client.get(url, headers={"Range": "bytes=2-5"})
        assert (part.status_code, part.content) == (206, wheel.read_bytes()[2:6])
        assert client.head(url).headers["content-length"] == str(wheel.stat().st_size)

    server.run_cli("delete", "main", "ph-in-s3", "1.0", "--yes")
    assert seaweedfs.keys(prefix) == []


def test_files_can_be_served_by_presigned_redirect(tmp_path: Path, seaweedfs: S3Server) -> None:
    server = start_server(
        tmp_path / "data",
        {
            "PACKHOUSE_STORAGE": "s3",
            "PACKHOUSE_S3__SERVE": "redirect",
            "PACKHOUSE_S3__ENDPOINT_URL": seaweedfs.endpoint,
            "PACKHOUSE_S3__BUCKET": seaweedfs.bucket,
            "PACKHOUSE_S3__PREFIX": seaweedfs.new_prefix(),
            "PACKHOUSE_S3__ACCESS_KEY_ID": "packhouse-tests",
            "PACKHOUSE_S3__SECRET_ACCESS_KEY": "packhouse-tests",
        },
    )
    try:
        dist = tmp_path / "dist"
        dist.mkdir()
        wheel = make_wheel(dist, "ph-redirected", "1.0")
        twine_upload(server, wheel)
        with server.client() as client:
            url = file_path(simple_files(client, "ph-redirected")[0])
            redirect = client.get(url)
            assert redirect.status_code == 307
            location = redirect.headers["location"]
            assert location.startswith(seaweedfs.endpoint)
            assert "Signature" in location
        assert httpx.get(location).content == wheel.read_bytes()
        python = make_venv(tmp_path / "venv")
        pip_install(server, python, "ph-redirected")
        assert installed_version(python, "ph_redirected") == "1.0"
    finally:
        stop_server(server)


def test_s3_unreachable_is_a_503_nothing_recorded_and_a_retry_succeeds(
    tmp_path: Path, seaweedfs: S3Server
) -> None:
    host, port = seaweedfs.endpoint.removeprefix("http://").rsplit(":", 1)
    gate = Forwarder((host, int(port)))  # the store's network, which the test can cut
    prefix = seaweedfs.new_prefix()
    server = start_server(
        tmp_path / "data",
        {
            "PACKHOUSE_STORAGE": "s3",
            "PACKHOUSE_S3__ENDPOINT_URL": f"http://127.0.0.1:{gate.port}",
            "PACKHOUSE_S3__BUCKET": seaweedfs.bucket,
            "PACKHOUSE_S3__PREFIX": prefix,
            "PACKHOUSE_S3__ACCESS_KEY_ID": "packhouse-tests",
            "PACKHOUSE_S3__SECRET_ACCESS_KEY": "packhouse-tests",
        },
    )
    try:
        wheel = make_wheel(tmp_path, "ph-s3-away", "1.0")
        gate.cut()
        refused = upload(server, wheel)
        assert refused.status_code == 503, refused.text
        assert "blob store" in refused.text
        assert "Traceback" not in refused.text
        with server.client() as client:
            assert client.get("/pypi/main/simple/ph-s3-away/").status_code == 404
        gate.resume()
        assert seaweedfs.keys(prefix) == []
        assert upload(server, wheel).status_code == 200  # sent again once the store is back
        assert len(seaweedfs.keys(prefix)) == 2  # the wheel and its PEP 658 metadata file
    finally:
        gate.cut()
        stop_server(server)
