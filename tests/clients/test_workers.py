"""`packhouse serve --workers 2`: two processes on one port and one SQLite data directory.

Every request opens its own connection, so the kernel hands it to either worker; an upload
through one must be on the simple page and in the repodata of every next request, whichever
worker answers. A worker killed with -9 is started again while the other goes on serving.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel, synth
from tests.clients.test_pypi_clients import installed_version, pip_install
from tests.clients.test_pypi_proxy_faults import page
from tests.conftest import (
    ADMIN_PASSWORD,
    SIMPLE_JSON,
    VENV_BIN,
    RunningServer,
    file_path,
    make_venv,
    start_server,
    stop_server,
)
from tests.upstream_server import Document, static_upstream
from tests.web.test_upload_faults import upload

AUTH = ("admin", ADMIN_PASSWORD)


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def wait_for_workers(pid: int, count: int, timeout: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = children(pid)
        if len(found) == count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} workers under {pid}, found {children(pid)}")


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("workers") / "data"
    env = {  # the limit is low and the test client is the trusted proxy
        "PACKHOUSE_LOGIN_FAILURE_LIMIT": "4",
        "PACKHOUSE_TRUSTED_PROXIES": '["127.0.0.1/32"]',
        "PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS": '["127.0.0.1/32"]',
    }
    running = start_server(data, env, args=("--workers", "2", "--no-access-log"))
    yield running
    stop_server(running)
    assert not children(running.process.pid), "workers outlived the server"


def fresh_get(server: RunningServer, path: str, headers: dict[str, str]) -> httpx.Response:
    """One request on a new connection (either worker may take it)."""
    with httpx.Client(base_url=server.url, auth=AUTH, timeout=30) as client:
        return client.get(path, headers=headers)


def upload_and_read_back(server: RunningServer, directory: Path, rounds: int) -> None:
    """Upload a version, then read the page on fresh connections: each must list it."""
    for i in range(rounds):
        wheel = make_wheel(directory, "spread-pkg", f"1.{i}")
        response = upload(server, wheel)
        assert response.status_code == 200, response.text
        for _ in range(6):
            page = fresh_get(server, "/pypi/main/simple/spread-pkg/", SIMPLE_JSON)
            assert page.status_code == 200
            assert wheel.name in {f["filename"] for f in page.json()["files"]}, i


def test_two_workers_serve_each_others_uploads_at_once(
    workers: RunningServer, tmp_path: Path
) -> None:
    assert len(wait_for_workers(workers.process.pid, 2)) == 2
    upload_and_read_back(workers, tmp_path, 8)


@pytest.mark.postgres
def test_two_workers_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    server = start_server(
        tmp_path / "data", args=("--workers", "2", "--database-url", postgres_url)
    )
    try:
        assert len(wait_for_workers(server.process.pid, 2)) == 2
        upload_and_read_back(server, tmp_path, 4)
    finally:
        stop_server(server)


def test_pip_installs_a_version_the_moment_it_is_uploaded(
    workers: RunningServer, tmp_path: Path
) -> None:
    # each pip run opens its own connections: whichever worker answers must know the upload
    python = make_venv(tmp_path / "venv")
    for i in (20, 21, 22):
        wheel = make_wheel(tmp_path, "spread-pkg", f"1.{i}")
        response = upload(workers, wheel)
        assert response.status_code == 200, response.text
        pip_install(workers, python, f"spread-pkg==1.{i}")
        assert installed_version(python, "spread_pkg") == f"1.{i}"


def test_conda_uploads_are_in_every_workers_repodata(workers: RunningServer) -> None:
    for i in range(4):
        filename, data = synth.package_bytes(f"spread-{i}", "1.0")
        with httpx.Client(base_url=workers.url, auth=AUTH, timeout=30) as client:
            response = client.post(
                "/api/v1/repositories/conda/main/packages",
                files={"file": (filename, data, "application/octet-stream")},
            )
        assert response.status_code == 201, response.text
        for _ in range(4):
            repodata = fresh_get(workers, "/conda/main/noarch/repodata.json", {})
            assert repodata.status_code == 200
            assert filename in repodata.json()["packages.conda"], i


def test_failed_logins_are_limited_once_for_all_workers_by_forwarded_address(
    workers: RunningServer,
) -> None:
    def login(user: str, address: str) -> int:
        with httpx.Client(base_url=workers.url, auth=(user, "wrong-password"), timeout=30) as c:
            return c.get("/pypi/main/simple/", headers={"X-Forwarded-For": address}).status_code

    # four failures spread over both workers reach the limit of four, in all
    assert [login("mallory", "198.51.100.7, 203.0.113.5") for _ in range(4)] == [401] * 4
    assert login("mallory", "203.0.113.9") == 429  # the user is limited
    assert login("trent", "203.0.113.5") == 429  # so is the address, for anyone
    # the address is the proxy-added rightmost one, not what the sender wrote to its left
    assert login("trent", "203.0.113.5, 203.0.113.6") == 401


def test_a_killed_worker_is_replaced_and_the_other_goes_on(workers: RunningServer) -> None:
    before = wait_for_workers(workers.process.pid, 2)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    for _ in range(20):  # the other worker answers meanwhile
        assert fresh_get(workers, "/healthz", {}).status_code == 200
    after = wait_for_workers(workers.process.pid, 2)
    assert victim not in after
    assert fresh_get(workers, "/pypi/main/simple/spread-pkg/", SIMPLE_JSON).status_code == 200


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("ftp://x/y", "--storage must be local or s3://BUCKET/PREFIX, not 'ftp://x/y'"),
        ("s3:///blobs", "names no bucket"),
    ],
)
def test_serve_refuses_a_storage_it_cannot_use(tmp_path: Path, storage: str, message: str) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "packhouse"), "serve", "--data", str(tmp_path), "--storage", storage],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "packhouse.db").exists()


@pytest.mark.parametrize("workers_given", ["1", "2"])
def test_a_second_server_on_a_port_in_use_refuses_to_start(
    workers: RunningServer, tmp_path: Path, workers_given: str
) -> None:
    """granian binds with SO_REUSEPORT: without the check, a second server on the workers'
    port started and took a share of their connections to its own database."""
    port = workers.url.rsplit(":", 1)[1]
    result = subprocess.run(
        [
            *(str(VENV_BIN / "packhouse"), "serve", "--data", str(tmp_path / "other")),
            *("--port", port, "--workers", workers_given),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stdout + result.stderr
    assert not (tmp_path / "other" / "packhouse.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "postgresql+psycopg://ci:s3cret-pw@127.0.0.1:1/nothing",
            "cannot reach the database postgresql+psycopg://ci:***@127.0.0.1:1/nothing:"
            " connection failed",
        ),
        ("mysql://ci:s3cret-pw@127.0.0.1/x", "database_url mysql://ci:***@127.0.0.1/x cannot be"),
        ("not a url", "database_url is not a database URL"),
    ],
)
def test_serve_and_admin_commands_say_why_a_database_url_fails(
    tmp_path: Path, url: str, message: str
) -> None:
    """One line that names the database (its password left out), not a traceback."""
    for command in (["serve", "--port", "1"], ["user", "list"]):
        result = subprocess.run(
            [str(VENV_BIN / "packhouse"), *command, "--data", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PACKHOUSE_DATABASE_URL": url},
        )
        said = result.stdout + result.stderr
        assert result.returncode == 1, said
        assert message in said
        assert "Traceback" not in said
        assert "s3cret-pw" not in said


def test_concurrent_requests_on_both_workers_make_one_upstream_fetch(
    workers: RunningServer, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, "together", "1.0")
    data = wheel.read_bytes()
    with static_upstream() as public:
        public.documents["/simple/together/"] = page(
            "together", (wheel.name, data, "/files/together.whl")
        )
        public.documents["/files/together.whl"] = Document(data)
        public.delay = 0.5  # every request arrives while the first fetch waits
        workers.run_cli("repo", "create", "mirror", "--upstream", f"{public.url}/simple/")
        with ThreadPoolExecutor(12) as pool:
            pages = list(
                pool.map(
                    lambda _: fresh_get(workers, "/pypi/mirror/simple/together/", SIMPLE_JSON),
                    range(12),
                )
            )
        assert {r.status_code for r in pages} == {200}
        link = file_path(pages[0].json()["files"][0])
        with ThreadPoolExecutor(12) as pool:
            files = list(pool.map(lambda _: fresh_get(workers, link, {}), range(12)))
        assert {r.status_code for r in files} == {200}
        assert all(r.content == data for r in files)
        assert len(public.asked("/simple/together/")) == 1
        assert len(public.asked("/files/together.whl")) == 1
