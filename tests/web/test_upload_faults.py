"""Faults a publishing client must hear about, against the real server process: an upload
over the limit (413), the data directory's disk full (507), the database locked or
unreachable (503 with Retry-After). Each answer reaches the client with Packhouse's
message (no broken pipe), and nothing is recorded: no artifact, no journal entry, no
temporary file."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.builders import make_wheel, synth
from tests.conftest import (
    ADMIN_PASSWORD,
    VENV_BIN,
    RunningServer,
    free_port,
    start_server,
    stop_server,
)

AUTH = ("admin", ADMIN_PASSWORD)


def upload(server: RunningServer, wheel: Path) -> requests.Response:
    """An upload as twine sends it (requests, the whole body before reading the answer)."""
    name, version = wheel.name.split("-")[:2]
    with wheel.open("rb") as f:
        return requests.post(
            f"{server.url}/pypi/main/",
            data={":action": "file_upload", "name": name, "version": version},
            files={"content": (wheel.name, f)},
            auth=AUTH,
            timeout=120,
        )


def twine(server: RunningServer, wheel: Path) -> str:
    """What `twine upload` printed (one line, whatever the terminal's width); asserts it
    failed."""
    result = subprocess.run(
        [
            str(VENV_BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar",
            "--verbose", "--repository-url", f"{server.url}/pypi/main/", "-u", "admin",
            "-p", ADMIN_PASSWORD, str(wheel),
        ],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "1000"},
    )  # fmt: skip
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, out
    assert "Broken pipe" not in out, out
    assert "Connection aborted" not in out, out
    return out


def uv_publish(server: RunningServer, wheel: Path) -> str:
    result = subprocess.run(
        [
            str(VENV_BIN / "uv"), "publish", "--publish-url", f"{server.url}/pypi/main/",
            "-u", "admin", "-p", ADMIN_PASSWORD, str(wheel),
        ],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "UV_NO_CONFIG": "1", "NO_COLOR": "1"},
    )  # fmt: skip
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, out
    return out


def big_wheel(directory: Path, name: str, size: int) -> Path:
    """A wheel of about `size` bytes (random, so it does not compress)."""
    return make_wheel(directory, name, "1.0", extra_members={"blob.bin": random.randbytes(size)})


def leftovers(data: Path) -> list[str]:
    """Temporary files of uploads or blobs still on disk."""
    return [
        p.name for d in (data / "tmp", data / "blobs" / "tmp") if d.is_dir() for p in d.iterdir()
    ]


def journal_files(data: Path) -> list[str]:
    with sqlite3.connect(f"file:{data / 'packhouse.db'}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT filename FROM journal WHERE filename IS NOT NULL").fetchall()
    return [r[0] for r in rows]


def listed(server: RunningServer, project: str) -> list[str]:
    response = requests.get(
        f"{server.url}/pypi/main/simple/{project}/",
        auth=AUTH,
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=60,
    )
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    return [f["filename"] for f in response.json()["files"]]


def conda_filenames(server: RunningServer) -> set[str]:
    response = requests.get(f"{server.url}/conda/main/noarch/repodata.json", auth=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    data = response.json()
    return set(data.get("packages", {})) | set(data.get("packages.conda", {}))


def blob_count(data: Path) -> int:
    return sum(1 for p in (data / "blobs").glob("??/??/*") if p.is_file())


# ---- over the limit ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def small_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server whose upload limit is 200 kB, run by each HTTP server Packhouse offers."""
    data = tmp_path_factory.mktemp(f"limit-{request.param}") / "data"
    running = start_server(
        data, {"PACKHOUSE_MAX_UPLOAD_BYTES": "200000"}, ("--server", request.param)
    )
    yield running
    stop_server(running)


@pytest.mark.parametrize("size", [300_000, 3_000_000])
def test_over_the_limit_the_client_reads_the_413(
    small_server: RunningServer, tmp_path: Path, size: int
) -> None:
    """300 kB is refused while the file streams; 3 MB by its Content-Length, before any
    of it is read. Either way requests reads the answer after sending everything."""
    wheel = big_wheel(tmp_path, f"ph-big{size}", size)
    response = upload(small_server, wheel)
    assert response.status_code == 413, response.text
    assert "larger than the limit of 200000 bytes (max_upload_bytes)" in response.text
    assert listed(small_server, f"ph-big{size}") == []
    assert leftovers(small_server.data) == []


def test_over_the_limit_twine_and_uv_print_the_reason(
    small_server: RunningServer, tmp_path: Path
) -> None:
    wheel = big_wheel(tmp_path, "ph-big-client", 3_000_000)
    out = twine(small_server, wheel)
    assert "413" in out, out
    assert "max_upload_bytes" in out, out
    out = uv_publish(small_server, wheel)
    assert "413" in out, out
    assert "max_upload_bytes" in out, out
    assert leftovers(small_server.data) == []


def test_no_credentials_on_a_big_upload_is_a_401_the_client_reads(
    small_server: RunningServer, tmp_path: Path
) -> None:
    wheel = big_wheel(tmp_path, "ph-big-anon", 150_000)
    with wheel.open("rb") as f:
        response = requests.post(
            f"{small_server.url}/pypi/main/",
            data={":action": "file_upload", "name": "ph-big-anon", "version": "1.0"},
            files={"content": (wheel.name, f)},
            timeout=60,
        )
    assert response.status_code == 401, response.text
    assert "needs credentials" in response.text


# ---- disk full --------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs as the data directory (unmounted afterwards); skipped where mounting
    is not permitted (not root, no CAP_SYS_ADMIN)."""
    data = tmp_path / "data"
    data.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(data)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def test_disk_full_is_a_507_the_client_reads_and_nothing_is_recorded(
    small_disk: Path, tmp_path: Path
) -> None:
    server = start_server(small_disk)
    try:
        uploaded: list[str] = []
        refused = None
        for i in range(40):
            wheel = big_wheel(tmp_path, f"ph-fill{i}", 400_000)
            response = upload(server, wheel)
            if response.status_code != 200:
                refused = (wheel, response)
                break
            uploaded.append(wheel.name)
        assert refused is not None, "the 3 MiB disk never filled"
        wheel, response = refused
        assert response.status_code == 507, response.text
        assert "no space left" in response.text, response.text
        assert uploaded, "not even one upload fitted"
        project = wheel.name.split("-")[0].replace("_", "-")
        assert listed(server, project) == []
        assert wheel.name not in journal_files(small_disk)
        assert leftovers(small_disk) == []
        assert blob_count(small_disk) == len(uploaded) * 2  # each wheel and its METADATA
        # twine, still full: it prints the 507 and the reason, not a broken pipe
        out = twine(server, wheel)
        assert "507" in out, out
        assert "no space left" in out, out
        assert leftovers(small_disk) == []
        # a file bigger than the space left: refused while it streams in
        huge = big_wheel(tmp_path, "ph-huge", 2_500_000)
        response = upload(server, huge)
        assert response.status_code == 507, response.text
        assert "no space left" in response.text, response.text
        assert listed(server, "ph-huge") == []
        assert leftovers(small_disk) == []
        assert blob_count(small_disk) == len(uploaded) * 2
        # a conda package, PUT as a raw body: refused the same way
        filename, package = synth.package_bytes(
            "ph-conda-full", "1.0", files={"share/blob.bin": random.randbytes(2_500_000)}
        )
        conda_url = f"{server.url}/conda/main/noarch/{filename}"
        response = requests.put(conda_url, data=package, auth=AUTH, timeout=120)
        assert response.status_code == 507, response.text
        assert "no space left" in response.text, response.text
        assert filename not in conda_filenames(server)
        assert leftovers(small_disk) == []
        assert blob_count(small_disk) == len(uploaded) * 2
        # the server still serves what it has
        for name in uploaded:
            assert listed(server, name.split("-")[0].replace("_", "-")) == [name]

        # space returns: the same upload succeeds
        subprocess.run(["mount", "-o", "remount,size=32m", str(small_disk)], check=True)
        response = upload(server, wheel)
        assert response.status_code == 200, response.text
        assert listed(server, project) == [wheel.name]
        assert wheel.name in journal_files(small_disk)
        response = requests.put(conda_url, data=package, auth=AUTH, timeout=120)
        assert response.status_code in (200, 201), response.text
        assert filename in conda_filenames(server)
        assert leftovers(small_disk) == []
    finally:
        stop_server(server)


# ---- the database locked or unreachable ---------------------------------------------------


def test_sqlite_locked_past_the_busy_timeout_is_a_503_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = start_server(data, {"PACKHOUSE_DB_BUSY_TIMEOUT": "1"})
    try:
        wheel = make_wheel(tmp_path, "ph-locked", "1.0")
        before = journal_files(data)
        # a first request, so the server knows the password (a login attempt is a write)
        assert listed(server, "ph-locked") == []
        holder = sqlite3.connect(data / "packhouse.db", isolation_level=None, timeout=30)
        holder.execute("BEGIN EXCLUSIVE")  # another writer holding the lock for long
        try:
            response = upload(server, wheel)
            read_meanwhile = listed(server, "ph-locked")  # readers are not blocked (WAL)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert "locked by another writer" in response.text, response.text
        assert "nothing was changed" in response.text
        assert read_meanwhile == []
        assert journal_files(data) == before
        assert listed(server, "ph-locked") == []
        assert leftovers(data) == []
        # the lock released, the same upload goes through
        response = upload(server, wheel)
        assert response.status_code == 200, response.text
        assert listed(server, "ph-locked") == [wheel.name]
        assert journal_files(data) == [*before, wheel.name]
        assert blob_count(data) == 2  # the blob the 503 left is the one the retry used
    finally:
        stop_server(server)


class Forwarder:
    """A loopback TCP forwarder to PostgreSQL that a test can cut: `cut` closes the
    listener and resets every connection through it, as a database host going away does;
    `resume` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.resume()

    def resume(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self.listener is not None:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
            self.listener.close()
            self.listener = None
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.sockets.clear()


def test_postgresql_unreachable_is_a_503_not_a_500(tmp_path: Path, postgres_url: str) -> None:
    forwarder = Forwarder(("127.0.0.1", 5432))
    url = postgres_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{forwarder.port}/")
    assert url != postgres_url
    server = start_server(tmp_path / "data", {"PACKHOUSE_DATABASE_URL": url})
    try:
        first = make_wheel(tmp_path, "ph-pg-first", "1.0")
        assert upload(server, first).status_code == 200
        forwarder.cut()
        wheel = make_wheel(tmp_path, "ph-pg-away", "1.0")
        response = upload(server, wheel)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert "cannot reach its database" in response.text, response.text
        page = requests.get(f"{server.url}/pypi/main/simple/ph-pg-away/", auth=AUTH, timeout=60)
        assert page.status_code == 503, page.text
        assert leftovers(tmp_path / "data") == []
        forwarder.resume()
        assert listed(server, "ph-pg-away") == []  # nothing was half-written
        assert listed(server, "ph-pg-first") == [first.name]
        assert upload(server, wheel).status_code == 200
        assert listed(server, "ph-pg-away") == [wheel.name]
    finally:
        stop_server(server)
        forwarder.cut()
