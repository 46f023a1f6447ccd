"""`packhouse serve --tls-cert --tls-key`: the real server over HTTPS with a throwaway CA,
uv publishing and pip and uv installing through it; unusable TLS settings refused before
the server starts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.clients.tls_server import Certificates, make_certificates, start_tls_server
from tests.conftest import ADMIN_PASSWORD, CLIENT_ENV, VENV_BIN, RunningServer, stop_server

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, certs: Certificates
) -> Iterator[RunningServer]:
    running = start_tls_server(tmp_path_factory.mktemp("tls") / "data", certs)
    yield running
    stop_server(running)


# CA bundles named in the environment: requests (so pip) lets REQUESTS_CA_BUNDLE or
# CURL_CA_BUNDLE override `pip --cert`, so the clients get only the test CA.
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT", "SSL_CERT_FILE", "SSL_CERT_DIR")


def client_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CA_VARIABLES}
    return {**env, **CLIENT_ENV, **extra}


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=300, env=client_env(**env)
    )


def test_publish_and_install_over_https(
    tls_server: RunningServer, certs: Certificates, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    make_wheel(dist, "ph-tls-demo", "1.0")
    trust = {"SSL_CERT_FILE": str(certs.ca)}
    published = run(
        [
            str(VENV_BIN / "uv"),
            "publish",
            "--publish-url",
            f"{tls_server.url}/pypi/main/",
            "-u",
            "admin",
            "-p",
            ADMIN_PASSWORD,
            str(dist / "*"),
        ],
        tmp_path,
        trust,
    )
    assert published.returncode == 0, published.stderr
    index = f"https://admin:{ADMIN_PASSWORD}@{tls_server.host}/pypi/main/simple/"
    target = tmp_path / "pip-target"
    installed = run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "pip",
            "install",
            "--cert",
            str(certs.ca),
            "--index-url",
            index,
            "--target",
            str(target),
            "ph-tls-demo==1.0",
        ],
        tmp_path,
        {},
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert list(target.glob("ph_tls_demo-1.0.dist-info"))
    uv_target = tmp_path / "uv-target"
    uv_installed = run(
        [
            str(VENV_BIN / "uv"),
            "pip",
            "install",
            "--python",
            str(VENV_BIN / "python"),
            "--index-url",
            index,
            "--target",
            str(uv_target),
            "ph-tls-demo==1.0",
        ],
        tmp_path,
        trust,
    )
    assert uv_installed.returncode == 0, uv_installed.stderr
    assert list(uv_target.glob("ph_tls_demo-1.0.dist-info"))


def test_clients_that_do_not_trust_the_ca_are_refused(
    tls_server: RunningServer, tmp_path: Path
) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_server.url}/healthz", timeout=10)
    # and the port speaks no plain HTTP
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{tls_server.host}/healthz", timeout=10)


def test_uvicorn_serves_tls_too(tmp_path: Path, certs: Certificates) -> None:
    running = start_tls_server(tmp_path / "data", certs, server="uvicorn")
    try:
        with httpx.Client(verify=certs.context()) as client:
            answer = client.get(f"{running.url}/pypi/main/simple/", auth=("admin", ADMIN_PASSWORD))
        assert answer.status_code == 200
    finally:
        stop_server(running)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (("cert",), "--tls-cert needs --tls-key too"),
        (("key",), "--tls-key needs --tls-cert too"),
        (("cert", "missing"), "does not exist"),
        (("cert", "other-key"), "cannot use the TLS certificate"),
        (("cert", "cert-as-key"), "cannot use the TLS certificate"),
    ],
)
def test_unusable_tls_settings_are_refused_before_start(
    tmp_path: Path, certs: Certificates, files: tuple[str, ...], message: str
) -> None:
    other = make_certificates(tmp_path / "other")
    paths = {
        "cert": ["--tls-cert", str(certs.cert)],
        "key": ["--tls-key", str(certs.key)],
        "missing": ["--tls-key", str(tmp_path / "nope.pem")],
        "other-key": ["--tls-key", str(other.key)],
        "cert-as-key": ["--tls-key", str(certs.cert)],
    }
    argv = [str(VENV_BIN / "packhouse"), "serve", "--data", str(tmp_path / "data")]
    for f in files:
        argv += paths[f]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was made
