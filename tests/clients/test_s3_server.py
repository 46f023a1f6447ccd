"""The real server storing blobs in a real S3 server (SeaweedFS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import make_wheel
from tests.clients.test_pypi_clients import installed_version, pip_install, twine_upload
from tests.conftest import RunningServer, S3Server, make_venv, start_server, stop_server

pytestmark = [pytest.mark.clients, pytest.mark.s3]


@pytest.fixture
def s3_server(tmp_path: Path, seaweedfs: S3Server) -> Iterator[tuple[RunningServer, str]]:
    bucket = seaweedfs.new_bucket()
    running = start_server(
        tmp_path / "data",
        {
            "PACKHOUSE_STORAGE": "s3",
            "PACKHOUSE_S3__ENDPOINT_URL": seaweedfs.endpoint,
            "PACKHOUSE_S3__BUCKET": bucket,
            "PACKHOUSE_S3__ACCESS_KEY_ID": "packhouse-tests",
            "PACKHOUSE_S3__SECRET_ACCESS_KEY": "packhouse-tests",
        },
    )
    yield running, bucket
    stop_server(running)


def test_upload_install_download_and_delete_with_blobs_in_s3(
    s3_server: tuple[RunningServer, str], seaweedfs: S3Server, tmp_path: Path
) -> None:
    server, bucket = s3_server
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = make_wheel(dist, "ph-in-s3", "1.0")
    twine_upload(server, wheel)

    keys = {o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert len(keys) == 2  # the wheel and its PEP 658 metadata file
    assert not (server.data / "blobs").exists()

    python = make_venv(tmp_path / "venv")
    pip_install(server, python, "ph-in-s3")
    assert installed_version(python, "ph_in_s3") == "1.0"
    with server.client() as client:
        page = client.get(
            "/pypi/main/simple/ph-in-s3/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        ).json()
        url = "/" + page["files"][0]["url"].removeprefix("../../../../")
        assert client.get(url).content == wheel.read_bytes()

    server.run_cli("delete", "main", "ph-in-s3", "1.0", "--yes")
    assert seaweedfs.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
