"""A conda group over a hosted channel and two proxies on the real server: one of a second,
real Packhouse process, one of a static channel whose proxy has a cooldown. Both upstreams
serve CEP 16 shards, and the group reads them (not their whole repodata.json) for shard
clients: py-rattler, and conda itself with its rattler solver. The sharded view and
repodata.json list the same records, and so do run_exports.json, index.html and
channeldata.json."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard

from tests.builders import synth
from tests.clients.conda_client import Conda, conda_fixture, installed
from tests.clients.test_conda_proxy import (
    rattler_install,
    upload,
    upstream_asked,
    upstream_shards,
)
from tests.conftest import RunningServer, start_server, stop_server
from tests.services.test_conda_sources_proxy import NOW_MS, OLD_MS, Channel
from tests.upstream_server import static_upstream

__all__ = ["conda_fixture"]  # the `conda` fixture

pytestmark = pytest.mark.clients

LOOPBACK_ONLY = {"PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS": '["127.0.0.1/32"]'}
WANTED = {"acme-app-1.0-0", "pubdep-2.0-0", "toolz-1.0-0"}


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A second Packhouse: pubdep 1.0 and 2.0, and a squatted acme-app 99.0."""
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
def recent() -> Iterator[Channel]:
    """A static sharded channel: toolz 1.0 built long ago, toolz 2.0 indexed moments ago
    (CEP 47), `fresh` only moments ago."""
    with static_upstream() as server:
        chan = Channel(server)
        chan.add("toolz", "1.0", timestamp=OLD_MS, run_exports={"weak": ["toolz >=1.0"]})
        chan.add("toolz", "2.0", timestamp=OLD_MS, indexed_timestamp=NOW_MS)
        chan.add("fresh", "1.0", timestamp=NOW_MS)
        chan.publish(shards=True)
        yield chan


@pytest.fixture(scope="module")
def company(
    tmp_path_factory: pytest.TempPathFactory, public: RunningServer, recent: Channel
) -> Iterator[RunningServer]:
    """`main` (acme-app 1.0, which needs pubdep and toolz), proxies `forge` (of `public`)
    and `cool` (of `recent`, --min-age 3d), the group `channel` = main + forge + cool."""
    running = start_server(tmp_path_factory.mktemp("company") / "data", LOOPBACK_ONLY)
    running.run_cli(
        "repo", "create", "forge", "-f", "conda", "--upstream", f"{public.url}/conda/public"
    )
    running.run_cli("repo", "create", "cool", "-f", "conda", "--upstream", recent.url)
    running.run_cli("repo", "update", "cool", "-f", "conda", "--min-age", "3d")
    running.run_cli("repo", "create", "channel", "-f", "conda", "--bases", "main,forge,cool")
    built = tmp_path_factory.mktemp("company-pkgs")
    package = synth.make_package(built, "acme-app", "1.0", depends=["pubdep", "toolz"])
    upload(running, "main", package)
    yield running
    stop_server(running)


def channel_url(server: RunningServer) -> str:
    secret = server.run_cli("token", "create", "--user", "admin", "--repo", "conda/channel")
    return f"{server.url}/t/{secret.stdout.strip()}/conda/channel"


def assert_read_by_shards(public: RunningServer, recent: Channel) -> None:
    """Both upstreams were read by their shards, never by their whole repodata.json, and
    neither was asked about the hosted acme-app."""
    digests = upstream_shards(public)
    assert upstream_asked(public, f"/noarch/shards/{digests['pubdep'].hex()}")
    assert not upstream_asked(public, digests["acme-app"].hex())
    assert not upstream_asked(public, "/conda/public/noarch/repodata.json")
    toolz = recent.upstream_digest("noarch", "toolz").hex()
    assert recent.upstream.asked(toolz) == [f"/chan/noarch/shards/{toolz}.msgpack.zst"]
    assert recent.upstream.asked("/noarch/repodata.json") == []


def test_py_rattler_installs_through_two_proxies_from_their_shards(
    company: RunningServer, public: RunningServer, recent: Channel, tmp_path: Path
) -> None:
    out = rattler_install(channel_url(company), tmp_path)
    assert "['acme-app=1.0', 'pubdep=2.0', 'toolz=1.0']" in out, out
    assert installed(tmp_path) == WANTED  # toolz 2.0 is held back by the cooldown
    assert "/t/***/conda/channel/noarch/shards/" in company.log_text()
    assert_read_by_shards(public, recent)


def create(conda: Conda, company: RunningServer, home: Path, solver: str) -> list[str]:
    """Install acme-app through the group; the paths conda asked the group for."""
    before = len(company.log_text())
    prefix = home / "env"
    conda.run(
        "create", "-y", "-p", prefix, "--override-channels", "-c", channel_url(company),
        "--solver", solver, "acme-app", home=home,
    )  # fmt: skip
    assert installed(prefix) == WANTED
    new = company.log_text()[before:]
    # conda asks for a /t/<token>/conda/<channel> URL as /conda/t/<token>/<channel>
    return re.findall(r'"GET (?:/t/\*\*\*/conda|/conda/t/\*\*\*)/channel/([^" ]+)', new)


def test_conda_with_its_rattler_solver_installs_from_the_shards(
    conda: Conda, company: RunningServer, public: RunningServer, recent: Channel, tmp_path: Path
) -> None:
    asked = create(conda, company, tmp_path, "rattler")
    assert "noarch/repodata_shards.msgpack.zst" in asked
    assert [p for p in asked if p.startswith("noarch/shards/")]
    assert not [p for p in asked if "repodata.json" in p]
    assert_read_by_shards(public, recent)


def sharded(server: RunningServer) -> dict[str, dict[str, Any]]:
    """{name: {filename: record}} of the group's shard index and shards (hex digests)."""
    by_name: dict[str, dict[str, Any]] = {}
    with server.client() as client:
        index = client.get("/conda/channel/noarch/repodata_shards.msgpack.zst")
        doc = msgpack.unpackb(zstandard.decompress(index.content))
        for name, digest in doc["shards"].items():
            data = client.get(f"/conda/channel/noarch/shards/{digest.hex()}.msgpack.zst").content
            assert hashlib.sha256(data).digest() == digest
            shard = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(data, 1 << 24))
            for filename, record in {**shard["packages"], **shard["packages.conda"]}.items():
                hexed = {k: v.hex() if isinstance(v, bytes) else v for k, v in record.items()}
                by_name.setdefault(name, {})[filename] = hexed
    return by_name


def monolithic(server: RunningServer, path: str = "repodata.json") -> dict[str, Any]:
    with server.client() as client:
        response = client.get(f"/conda/channel/noarch/{path}")
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = json.loads(response.content)
    return doc


def test_the_sharded_view_and_repodata_list_the_same_records(company: RunningServer) -> None:
    view = sharded(company)  # before repodata.json is read: from the upstreams' shards
    doc = monolithic(company)
    by_name: dict[str, dict[str, Any]] = {}
    for filename, record in {**doc["packages"], **doc["packages.conda"]}.items():
        by_name.setdefault(record["name"], {})[filename] = record
    assert view == by_name
    assert set(view) == {"acme-app", "pubdep", "toolz"}  # not `fresh`, held back whole
    assert set(view["toolz"]) == {"toolz-1.0-0.conda"}
    assert set(view["acme-app"]) == {"acme-app-1.0-0.conda"}


def test_run_exports_index_and_channeldata_list_the_group(company: RunningServer) -> None:
    doc = monolithic(company)
    filenames = {*doc["packages"], *doc["packages.conda"]}
    exports = monolithic(company, "run_exports.json")
    assert {*exports["packages"], *exports["packages.conda"]} == filenames
    assert exports["packages.conda"]["toolz-1.0-0.conda"] == {
        "run_exports": {"weak": ["toolz >=1.0"]}
    }
    with company.client() as client:
        html = client.get("/conda/channel/noarch/").text
        channeldata = client.get("/conda/channel/channeldata.json").json()
        channel_html = client.get("/conda/channel/").text
    links = set(re.findall(r'<a href="([^"]+\.(?:conda|tar\.bz2))">', html))
    assert links == filenames
    packages = channeldata["packages"]
    assert set(packages) == {"acme-app", "pubdep", "toolz"}
    assert packages["acme-app"]["version"] == "1.0"  # never the squatted 99.0
    assert packages["toolz"]["version"] == "1.0"  # 2.0 is held back
    assert packages["pubdep"]["version"] == "2.0"
    assert packages["toolz"]["run_exports"] == {"1.0": {"weak": ["toolz >=1.0"]}}
    assert channeldata["subdirs"] == ["noarch"]
    for name in packages:
        assert f"<tr><td>{name}</td>" in channel_html
    assert "fresh" not in channel_html


def test_conda_classic_reads_the_monolithic_repodata_and_installs_the_same(
    conda: Conda, company: RunningServer, tmp_path: Path
) -> None:
    asked = create(conda, company, tmp_path, "classic")
    whole = [p for p in asked if p.startswith("noarch/") and "repodata.json" in p]
    assert whole  # current_repodata.json.zst (or repodata.json.zst), not shards
    assert not [p for p in asked if "shards" in p]
