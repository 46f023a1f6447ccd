"""py-rattler solves and installs from the real server: public, password, URL token, Bearer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.builders import synth
from tests.clients.conda_client import RATTLER_RUN
from tests.conftest import RunningServer

pytestmark = pytest.mark.clients

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "tests" / "data" / "conda" / "conda" / "test-recipes" / "noarch"


_RATTLER = (
    """
from rattler import Channel, Client, Gateway, install, solve

async def main(channel_url, prefix):
    # as pixi does: the client reads RATTLER_AUTH_FILE (and keyring) for credentials
    client = Client.authenticated_client()
    records = await solve(
        [Channel(channel_url)],
        ["dependent", "prefixed"],
        platforms=["noarch", "linux-64"],
        gateway=Gateway(client=client),
    )
    await install(records, target_prefix=prefix, show_progress=False, client=client)
    print(sorted(f"{r.name.normalized}={r.version}" for r in records))
"""
    + RATTLER_RUN
)


@pytest.fixture(scope="module")
def channels(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    folder = tmp_path_factory.mktemp("pkgs")
    prefixed = synth.make_package(
        folder,
        "prefixed",
        "1.0",
        "0",
        files={"share/prefixed/config.txt": f"prefix={synth.PLACEHOLDER}\n".encode()},
        prefix_paths=["share/prefixed/config.txt"],
    )
    server.run_cli("repo", "create", "pub", "--format", "conda", "--public")
    with server.client() as client:
        for repo in ("pub", "main"):
            for path in [*RECIPES.glob("dependen*.conda"), prefixed]:
                response = client.put(
                    f"/conda/{repo}/noarch/{path.name}", content=path.read_bytes()
                )
                assert response.status_code == 201, response.text
    return server


def rattler(channel_url: str, prefix: Path, cache: Path, **env: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_RATTLER), channel_url, str(prefix)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "RATTLER_CACHE_DIR": str(cache), **env},
    )
    output = result.stdout + result.stderr
    assert "dependency=2.0" in result.stdout, output
    assert "dependent=2.0" in result.stdout, output
    meta = {p.name for p in (prefix / "conda-meta").glob("*.json")}
    assert {"dependent-2.0-0.json", "dependency-2.0-0.json", "prefixed-1.0-0.json"} <= meta
    config = (prefix / "share" / "prefixed" / "config.txt").read_text()
    assert config == f"prefix={prefix}\n"  # the placeholder rewritten at install


def new_token(server: RunningServer, user: str = "admin") -> str:
    result = server.run_cli("token", "create", "--user", user, "--repo", "conda/main")
    return result.stdout.strip()


def test_public_channel_anonymously(channels: RunningServer, tmp_path: Path) -> None:
    rattler(f"{channels.url}/conda/pub", tmp_path / "env", tmp_path / "cache")


def test_private_channel_with_password_in_the_url(channels: RunningServer, tmp_path: Path) -> None:
    url = f"http://admin:{channels.admin_password}@{channels.host}/conda/main"
    rattler(url, tmp_path / "env", tmp_path / "cache")


def test_private_channel_with_token_in_the_path(channels: RunningServer, tmp_path: Path) -> None:
    token = new_token(channels)
    rattler(f"{channels.url}/t/{token}/conda/main", tmp_path / "env", tmp_path / "cache")


def test_private_channel_with_bearer_token_from_auth_file(
    channels: RunningServer, tmp_path: Path
) -> None:
    token = new_token(channels)
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"127.0.0.1": {"BearerToken": token}}))
    rattler(
        f"{channels.url}/conda/main",
        tmp_path / "env",
        tmp_path / "cache",
        RATTLER_AUTH_FILE=str(auth_file),
    )


def test_server_log_has_no_unexpected_error(channels: RunningServer) -> None:
    log = channels.log_text()
    assert "unexpected error" not in log
    assert "/shards/" in log  # rattler read the CEP 16 shards
