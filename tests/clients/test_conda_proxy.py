"""One conda channel for private and public packages: a group of a hosted channel and a
proxy of a second, real Packhouse process, driven with the real conda (both solvers) and
py-rattler (which reads the CEP 16 shards, as pixi does)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgpack
import pytest
import zstandard

from tests.builders import synth
from tests.clients.conda_client import RATTLER_RUN, SOLVERS, Conda, conda_fixture, installed
from tests.conftest import RunningServer, start_server, stop_server
from tests.services.test_conda_sources_proxy import NOW_MS, OLD_MS, Channel
from tests.upstream_server import StaticUpstream, static_upstream

__all__ = ["conda_fixture"]  # the `conda` fixture

pytestmark = pytest.mark.clients

LOOPBACK_ONLY = {"PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS": '["127.0.0.1/32"]'}


def upload(server: RunningServer, channel: str, path: Path) -> None:
    with server.client() as client:
        response = client.put(f"/conda/{channel}/noarch/{path.name}", content=path.read_bytes())
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The public channel: pubdep 1.0 and 2.0, and a squatted acme-app 99.0."""
    running = start_server(tmp_path_factory.mktemp("public") / "data")
    running.run_cli("repo", "create", "public", "--format", "conda", "--public")
    built = tmp_path_factory.mktemp("public-pkgs")
    for path in (
        synth.make_package(built, "pubdep", "1.0"),
        synth.make_package(built, "pubdep", "2.0"),
        synth.make_package(built, "acme-app", "99.0"),
    ):
        upload(running, "public", path)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def company(
    tmp_path_factory: pytest.TempPathFactory, upstream: RunningServer
) -> Iterator[RunningServer]:
    """`main` (acme-app 1.0, which needs pubdep), a proxy `forge` of the public channel and
    the group `channel` = main + forge."""
    running = start_server(tmp_path_factory.mktemp("company") / "data", LOOPBACK_ONLY)
    running.run_cli(
        "repo", "create", "forge", "--format", "conda",
        "--upstream", f"{upstream.url}/conda/public",
    )  # fmt: skip
    running.run_cli("repo", "create", "channel", "--format", "conda", "--bases", "main,forge")
    built = tmp_path_factory.mktemp("company-pkgs")
    upload(running, "main", synth.make_package(built, "acme-app", "1.0", depends=["pubdep"]))
    yield running
    stop_server(running)


def token(server: RunningServer, repo: str = "conda/channel") -> str:
    return server.run_cli("token", "create", "--user", "admin", "--repo", repo).stdout.strip()


def channel_url(server: RunningServer, name: str = "channel") -> str:
    return f"{server.url}/t/{token(server, f'conda/{name}')}/conda/{name}"


def create(conda: Conda, home: Path, channel: str, solver: str, *specs: str) -> Path:
    prefix = home / "env"
    conda.run(
        "create", "-y", "-p", prefix, "--override-channels", "-c", channel,
        "--solver", solver, *specs, home=home,
    )  # fmt: skip
    return prefix


def upstream_asked(upstream: RunningServer, fragment: str) -> list[str]:
    """The requests the upstream was sent with `fragment` in their path."""
    lines = upstream.log_text().splitlines()
    return [x for x in lines if '"GET ' in x and fragment in x.split('"GET ', 1)[1]]


@pytest.mark.parametrize("solver", SOLVERS)
def test_conda_installs_a_private_package_and_its_public_dependency(
    conda: Conda, company: RunningServer, tmp_path: Path, solver: str
) -> None:
    prefix = create(conda, tmp_path, channel_url(company), solver, "acme-app")
    assert installed(prefix) == {"acme-app-1.0-0", "pubdep-2.0-0"}


_RATTLER = (
    """
from rattler import Channel, Client, Gateway, install, solve

async def main(channel_url, prefix):
    client = Client.authenticated_client()
    records = await solve(
        [Channel(channel_url)], ["acme-app"], platforms=["noarch", "linux-64"],
        gateway=Gateway(client=client),
    )
    await install(records, target_prefix=prefix, show_progress=False, client=client)
    print(sorted(f"{r.name.normalized}={r.version}" for r in records))
"""
    + RATTLER_RUN
)


def rattler_install(channel: str, prefix: Path) -> str:
    """py-rattler solves acme-app from `channel` and installs it into `prefix`; what it
    printed (the records it solved) and its errors."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_RATTLER), channel, str(prefix)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "RATTLER_CACHE_DIR": str(prefix / "cache")},
    )
    return result.stdout + result.stderr


def upstream_shards(upstream: RunningServer) -> dict[str, bytes]:
    """{name: shard digest} of the public channel's noarch shard index."""
    index = httpx.get(f"{upstream.url}/conda/public/noarch/repodata_shards.msgpack.zst")
    shards: dict[str, bytes] = msgpack.unpackb(zstandard.decompress(index.content))["shards"]
    return shards


def test_py_rattler_installs_through_the_group_from_shards(
    company: RunningServer, upstream: RunningServer, tmp_path: Path
) -> None:
    out = rattler_install(channel_url(company), tmp_path)
    assert "['acme-app=1.0', 'pubdep=2.0']" in out, out
    assert installed(tmp_path) == {"acme-app-1.0-0", "pubdep-2.0-0"}
    assert "/conda/t/***/channel/noarch/shards/" in company.log_text()
    # the proxy read the upstream's own shards: pubdep's, never the squatted acme-app's
    shards = upstream_shards(upstream)
    assert upstream_asked(upstream, f"/noarch/shards/{shards['pubdep'].hex()}")
    assert not upstream_asked(upstream, shards["acme-app"].hex())


def test_a_hosted_name_gets_nothing_from_the_upstream_which_is_never_asked_for_it(
    company: RunningServer, upstream: RunningServer
) -> None:
    with company.client() as client:
        group = client.get("/conda/channel/noarch/repodata.json").json()
        forge = client.get("/conda/forge/noarch/repodata.json").json()
        squat = client.get("/conda/channel/noarch/acme-app-99.0-0.conda")
    assert {f for f in group["packages.conda"] if f.startswith("acme-app")} == {
        "acme-app-1.0-0.conda"
    }
    assert "acme-app-99.0-0.conda" in forge["packages.conda"]  # the proxy alone has it
    assert squat.status_code == 404
    assert upstream_asked(upstream, "acme-app") == []


@pytest.fixture(scope="module")
def recent(company: RunningServer) -> Iterator[StaticUpstream]:
    """A static channel whose pubdep 2.0 was indexed moments ago (CEP 47 `indexed_timestamp`,
    though built long ago), 1.5 built long ago (a `timestamp` in seconds) and 1.0 too (in
    milliseconds); the group `cool` = main + a proxy of it."""
    with static_upstream() as server:
        chan = Channel(server)
        chan.add("pubdep", "1.0", timestamp=OLD_MS)
        chan.add("pubdep", "1.5", timestamp=OLD_MS // 1000)
        chan.add("pubdep", "2.0", timestamp=OLD_MS, indexed_timestamp=NOW_MS)
        chan.publish()
        company.run_cli("repo", "create", "recent", "-f", "conda", "--upstream", chan.url)
        company.run_cli("repo", "create", "cool", "-f", "conda", "--bases", "main,recent")
        yield server


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_cooldown_keeps_a_release_of_moments_ago_out(
    conda: Conda, company: RunningServer, recent: StaticUpstream, tmp_path: Path, solver: str
) -> None:
    url = channel_url(company, "cool")
    prefix = create(conda, tmp_path / "before", url, solver, "acme-app")
    assert installed(prefix) == {"acme-app-1.0-0", "pubdep-2.0-0"}
    company.run_cli("repo", "update", "cool", "-f", "conda", "--min-age", "3d")
    try:
        prefix = create(conda, tmp_path / "after", url, solver, "acme-app")
        assert installed(prefix) == {"acme-app-1.0-0", "pubdep-1.5-0"}
    finally:
        company.run_cli("repo", "update", "cool", "-f", "conda", "--min-age", "none")


def test_a_condarc_with_the_group_as_its_one_channel(
    conda: Conda, company: RunningServer, tmp_path: Path
) -> None:
    secret = token(company)
    (tmp_path / ".condarc").write_text(
        f"channel_alias: {company.url}/t/{secret}/conda\n"
        "channels: [channel]\ndefault_channels: []\nchannel_priority: strict\n"
    )
    prefix = tmp_path / "env"
    conda.run("create", "-y", "-p", prefix, "acme-app", home=tmp_path)
    assert installed(prefix) == {"acme-app-1.0-0", "pubdep-2.0-0"}


def test_packages_fetched_once_are_served_from_the_cache(
    company: RunningServer, upstream: RunningServer
) -> None:
    path = "/conda/channel/noarch/pubdep-1.0-0.conda"
    with company.client() as client:
        first = client.get(path)
        again = client.get(path)
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert len(upstream_asked(upstream, "/conda/public/noarch/pubdep-1.0-0.conda")) == 1
    assert httpx.get(f"{company.url}{path}").status_code == 401  # the group is private
