"""`rattler-build upload prefix` and `rattler-build upload quetz` (py-rattler-build's upload
functions, the code `pixi upload` shares) against the real server, with real packages."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DATA, RunningServer

rattler_upload = pytest.importorskip("rattler_build.upload", reason="py-rattler-build is missing")

pytestmark = pytest.mark.clients

NOARCH = DATA / "conda" / "conda" / "test-recipes" / "noarch"
ZLIB = DATA / "conda" / "conda" / "conda_format_repo" / "linux-64"


@pytest.fixture(scope="module")
def token(server: RunningServer) -> str:
    result = server.run_cli(
        "token", "create", "--user", "admin", "--repo", "conda/main", "--scope", "upload"
    )
    return result.stdout.strip()


def prefix(server: RunningServer, path: Path, api_key: str | None, **options: Any) -> None:
    rattler_upload.upload_package_to_prefix(
        [str(path)], server.url, "main", api_key=api_key, **options
    )


def quetz(server: RunningServer, path: Path, api_key: str | None, **options: Any) -> None:
    rattler_upload.upload_package_to_quetz(
        [str(path)], server.url, "main", api_key=api_key, **options
    )


def quetz_refused(server: RunningServer, path: Path, api_key: str, status: int) -> None:
    """The quetz uploader fails; its error names no status ("Server responded with error"),
    so the status it was given is read from the server's access log."""
    with pytest.raises(Exception, match="Server responded with error"):
        quetz(server, path, api_key)
    wanted = f'"POST /api/channels/main/upload/{path.name}" {status} '
    deadline = time.monotonic() + 10  # the line is written once the answer has gone out
    while wanted not in server.log_text().splitlines()[-1] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert wanted in server.log_text().splitlines()[-1], server.log_text()[-2000:]


def records(server: RunningServer, subdir: str) -> dict[str, Any]:
    with server.client() as client:
        response = client.get(f"/conda/main/{subdir}/repodata.json")
    assert response.status_code == 200, response.text
    data = response.json()
    return {**data.get("packages", {}), **data.get("packages.conda", {})}


def stored_sha256(server: RunningServer, subdir: str, filename: str) -> str | None:
    with server.client() as client:
        response = client.get(f"/conda/main/{subdir}/{filename}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return hashlib.sha256(response.content).hexdigest()


def blob_kept(server: RunningServer, sha256: str) -> bool:
    """Whether the data directory holds a blob of these bytes (local store layout)."""
    return (server.data / "blobs" / sha256[:2] / sha256[2:4] / sha256).exists()


def leftovers(server: RunningServer) -> list[Path]:
    """Temporary upload files still on disk."""
    return [p for d in ("tmp", "blobs/tmp") for p in (server.data / d).glob("*") if p.is_file()]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rebuilt(path: Path, folder: Path) -> Path:
    """The same package under the same filename with other bytes (a zip comment added)."""
    copy = folder / path.name
    shutil.copy(path, copy)
    with zipfile.ZipFile(copy, "a") as archive:
        archive.comment = b"rebuilt"
    assert sha256_of(copy) != sha256_of(path)
    return copy


def prefix_request(
    server: RunningServer, path: Path, sha256: str, token: str, **fields: str
) -> httpx.Response:
    """What rattler-build's prefix uploader sends, with the checksum header as given."""
    headers = {"X-File-Name": path.name, "X-File-SHA256": sha256}
    files = {"file": (path.name, path.read_bytes(), "application/octet-stream", headers)}
    with server.client(auth=None) as client:
        return client.post(
            "/api/v1/upload/main",
            files=files,
            data=fields,
            headers={"Authorization": f"Bearer {token}"},
        )


def quetz_request(
    server: RunningServer, path: Path, sha256: str | None, key: str, force: str = "false"
) -> httpx.Response:
    params = {"force": force} | ({"sha256": sha256} if sha256 is not None else {})
    with server.client(auth=None) as client:
        return client.post(
            f"/api/channels/main/upload/{path.name}",
            params=params,
            content=path.read_bytes(),
            headers={"X-API-Key": key},
        )


def test_prefix_upload_lands_in_the_subdir_of_the_package(
    server: RunningServer, token: str
) -> None:
    noarch = NOARCH / "dependency-1.0-0.conda"
    linux = ZLIB / "zlib-1.2.11-h7b6447c_3.tar.bz2"
    prefix(server, noarch, token)
    prefix(server, linux, token)
    assert records(server, "noarch")[noarch.name]["sha256"] == sha256_of(noarch)
    assert records(server, "linux-64")[linux.name]["sha256"] == sha256_of(linux)
    assert stored_sha256(server, "linux-64", linux.name) == sha256_of(linux)


def test_quetz_upload_with_api_key(server: RunningServer, token: str) -> None:
    for path in (NOARCH / "dependency-2.0-0.conda", ZLIB / "zlib-1.2.11-h7b6447c_3.conda"):
        quetz(server, path, token)
    assert "dependency-2.0-0.conda" in records(server, "noarch")
    assert stored_sha256(server, "linux-64", "zlib-1.2.11-h7b6447c_3.conda") == sha256_of(
        ZLIB / "zlib-1.2.11-h7b6447c_3.conda"
    )


def test_artifactory_upload_as_documented(server: RunningServer, token: str) -> None:
    """The third form, a PUT per file; the base URL ends with /conda/ (Url::join)."""
    other = (
        DATA / "conda" / "conda" / "conda_format_repo" / "win-64" / "zlib-1.2.11-h62dcd97_3.tar.bz2"
    )
    rattler_upload.upload_package_to_artifactory(
        [str(other)], f"{server.url}/conda/", "main", token=token
    )
    assert stored_sha256(server, "win-64", other.name) == sha256_of(other)


def test_credentials_from_the_rattler_auth_file(
    server: RunningServer, token: str, tmp_path: Path
) -> None:
    """No key on the command line: prefix reads a BearerToken, quetz a CondaToken, from the
    auth file (RATTLER_AUTH_FILE, or `rattler-build auth login`), as pixi does."""
    bearer = tmp_path / "bearer.json"
    bearer.write_text(json.dumps({"127.0.0.1": {"BearerToken": token}}))
    conda_token = tmp_path / "conda-token.json"
    conda_token.write_text(json.dumps({"127.0.0.1": {"CondaToken": token}}))
    prefix(server, NOARCH / "dependent-1.0-0.conda", None, auth_file=str(bearer))
    quetz(server, NOARCH / "dependent-2.0-0.conda", None, auth_file=str(conda_token))
    assert {"dependent-1.0-0.conda", "dependent-2.0-0.conda"} <= set(records(server, "noarch"))


def test_wrong_token_is_401_and_a_read_token_403(server: RunningServer) -> None:
    path = NOARCH / "sample_noarch_python-1.0-py_0.conda"
    wrong = "ph-" + "x" * 43  # well formed, unknown
    with pytest.raises(Exception, match=r"HTTP 401"):
        prefix(server, path, wrong)
    quetz_refused(server, path, wrong, 401)
    read_only = server.run_cli("token", "create", "--user", "admin", "--repo", "conda/main")
    with pytest.raises(Exception, match=r"HTTP 403"):
        prefix(server, path, read_only.stdout.strip())
    quetz_refused(server, path, read_only.stdout.strip(), 403)
    answer = quetz_request(server, path, sha256_of(path), read_only.stdout.strip())
    assert answer.status_code == 403
    assert "may not upload" in answer.json()["detail"]
    assert quetz_request(server, path, sha256_of(path), "").status_code == 401
    with server.client(auth=None) as client:  # no credentials at all
        anonymous = client.post("/api/v1/upload/main", files={"file": ("a.conda", b"x")})
    assert anonymous.status_code == 401
    assert "WWW-Authenticate" in anonymous.headers
    assert stored_sha256(server, "noarch", path.name) is None


def test_checksum_mismatch_is_refused_and_nothing_stored(server: RunningServer, token: str) -> None:
    path = NOARCH / "small-executable-1.0-0.conda"
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    answer = prefix_request(server, path, wrong, token)
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"].startswith("Wrong SHA256 checksum")
    answer = quetz_request(server, path, wrong, token)
    assert answer.status_code == 406, answer.text  # quetz's answer
    assert sha256_of(path) in answer.json()["detail"]
    assert path.name not in records(server, "noarch")
    assert stored_sha256(server, "noarch", path.name) is None
    assert not blob_kept(server, sha256_of(path))
    assert not leftovers(server)
    # a missing or malformed checksum is a clear 400 too
    assert quetz_request(server, path, None, token).status_code == 400
    assert prefix_request(server, path, "abc", token).status_code == 400
    assert quetz_request(server, path, sha256_of(path), token, force="maybe").status_code == 400
    assert path.name not in records(server, "noarch")


def test_same_file_again_is_409_and_skip_existing_skips(server: RunningServer, token: str) -> None:
    path = NOARCH / "dependency-1.0-0.conda"  # uploaded by the first test
    if path.name not in records(server, "noarch"):
        prefix(server, path, token)
    with pytest.raises(Exception, match=r"409"):
        prefix(server, path, token)
    prefix(server, path, token, skip_existing=True)  # rattler-build takes the 409 as "there"
    quetz_refused(server, path, token, 409)
    answer = prefix_request(server, path, sha256_of(path), token)
    assert answer.status_code == 409
    assert answer.json()["detail"].startswith("the package entry already exists")
    answer = quetz_request(server, path, sha256_of(path), token)
    assert answer.status_code == 409
    assert answer.json()["detail"].startswith("Duplicate")


def test_force_accepts_the_identical_file_and_never_replaces_bytes(
    server: RunningServer, token: str, tmp_path: Path
) -> None:
    path = NOARCH / "dependency-2.0-0.conda"  # uploaded by the quetz test
    if path.name not in records(server, "noarch"):
        quetz(server, path, token)
    prefix(server, path, token, force=True)
    answer = quetz_request(server, path, sha256_of(path), token, force="true")
    assert answer.status_code == 200, answer.text
    assert answer.json()["created"] is False

    other = rebuilt(path, tmp_path)
    with pytest.raises(Exception, match=r"409"):
        prefix(server, other, token, force=True)
    answer = quetz_request(server, other, sha256_of(other), token, force="true")
    assert answer.status_code == 409
    assert "never replaces" in answer.json()["detail"]
    assert stored_sha256(server, "noarch", path.name) == sha256_of(path)
    assert records(server, "noarch")[path.name]["sha256"] == sha256_of(path)
    assert not blob_kept(server, sha256_of(other))


def test_bad_input_is_a_clear_4xx(server: RunningServer, token: str, tmp_path: Path) -> None:
    path = NOARCH / "dependent-1.0-0.conda"
    with server.client(auth=None) as client:
        auth = {"Authorization": f"Bearer {token}"}
        missing = client.post("/api/v1/upload/nosuch", files={"file": ("a", b"x")}, headers=auth)
        assert missing.status_code == 404
        assert "no conda repository named 'nosuch'" in missing.json()["detail"]
        no_file = client.post("/api/v1/upload/main", data={"x": "1"}, headers=auth)
        assert no_file.status_code == 400
        not_form = client.post("/api/v1/upload/main", content=b"raw", headers=auth)
        assert not_form.status_code == 400
    garbage = tmp_path / "garbage-1.0-0.conda"
    garbage.write_bytes(b"not a zip")
    answer = quetz_request(server, garbage, sha256_of(garbage), token)
    assert answer.status_code == 400, answer.text
    renamed = tmp_path / "renamed-1.0-0.conda"
    shutil.copy(path, renamed)
    answer = prefix_request(server, renamed, sha256_of(renamed), token)
    assert answer.status_code == 400
    assert "info-renamed-1.0-0.tar.zst" in answer.json()["detail"]  # the service says why
    attested = prefix_request(server, path, sha256_of(path), token, attestation="{}")
    assert attested.status_code == 400
    assert "attestations" in attested.json()["detail"]
    assert "renamed-1.0-0.conda" not in records(server, "noarch")


def test_server_log_has_no_unexpected_error_or_secret(server: RunningServer) -> None:
    log = server.log_text()
    assert "unexpected error" not in log
    assert "/api/v1/upload/main" in log
    assert "/api/channels/main/upload/" in log
