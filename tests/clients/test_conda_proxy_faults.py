"""A conda proxy on the real server when its upstream misbehaves: stopped, slow, wrong bytes,
oversize repodata, redirects to refused addresses; offline mode; one upstream fetch for
concurrent requests; and the confusion rule per subdir against an upstream that records
every path it is asked for.

The upstream is a static channel on loopback (tests/upstream_server.py). Only 127.0.0.1/32
is allowed; a server on 127.0.0.2 plays an internal address.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import zstandard

from tests.builders import synth
from tests.conftest import RunningServer, start_server, stop_server
from tests.services.test_conda_sources_proxy import Channel
from tests.upstream_server import Document, static_upstream

pytestmark = pytest.mark.clients

ENV = {
    "PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS": '["127.0.0.1/32"]',
    "PACKHOUSE_UPSTREAM_TIMEOUT": "1.5",
    "PACKHOUSE_UPSTREAM_MAX_INDEX_BYTES": "200000",
}


@pytest.fixture(scope="module")
def public() -> Iterator[Channel]:
    with static_upstream() as server:
        chan = Channel(server)
        chan.add("six", "1.16.0")
        chan.add("acme", "99.0")  # squats the private name, in noarch and linux-64
        chan.add("acme", "99.0", subdir="linux-64")
        chan.add("broken", "1.0")
        chan.publish()
        yield chan


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, public: Channel) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("proxy") / "data", ENV)
    url = public.url
    running.run_cli("repo", "create", "flaky", "-f", "conda", "--upstream", url, "--ttl", "0")
    running.run_cli("repo", "create", "steady", "-f", "conda", "--upstream", url)
    running.run_cli("repo", "create", "group", "-f", "conda", "--bases", "main,steady")
    path = synth.make_package(tmp_path_factory.mktemp("pkgs"), "acme", "1.0")
    with running.client() as client:
        assert client.put(f"/conda/main/noarch/{path.name}", content=path.read_bytes()).is_success
    yield running
    stop_server(running)


def get(server: RunningServer, path: str) -> httpx.Response:
    with server.client() as client:
        return client.get(path)


def files(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    doc = json.loads(response.content)
    return {*doc["packages"], *doc["packages.conda"]}


def test_the_confusion_rule_per_subdir_against_a_recording_upstream(
    proxy: RunningServer, public: Channel
) -> None:
    assert "acme-1.0-0.conda" in files(get(proxy, "/conda/group/noarch/repodata.json"))
    assert "acme-99.0-0.conda" not in files(get(proxy, "/conda/group/noarch/repodata.json"))
    assert get(proxy, "/conda/group/noarch/acme-99.0-0.conda").status_code == 404
    # acme is hosted in noarch only: the upstream's linux-64 acme is served and fetched
    assert "acme-99.0-0.conda" in files(get(proxy, "/conda/group/linux-64/repodata.json"))
    fetched = get(proxy, "/conda/group/linux-64/acme-99.0-0.conda")
    assert fetched.content == public.files["linux-64"]["acme-99.0-0.conda"][1]
    assert public.upstream.asked("/noarch/acme") == []
    assert public.upstream.asked("/linux-64/acme") == ["/chan/linux-64/acme-99.0-0.conda"]


def test_the_cached_copy_is_served_stale_when_the_upstream_fails(
    proxy: RunningServer, public: Channel
) -> None:
    fresh = get(proxy, "/conda/flaky/noarch/repodata.json.zst")
    assert fresh.status_code == 200
    assert "warning" not in fresh.headers
    key = "/chan/noarch/repodata.json.zst"
    saved = public.upstream.documents[key]
    public.upstream.documents[key] = Document(b"oops", status=503)
    try:
        stale = get(proxy, "/conda/flaky/noarch/repodata.json.zst")
    finally:
        public.upstream.documents[key] = saved
    assert stale.status_code == 200
    assert stale.headers["warning"] == '110 - "Response is Stale"'
    assert zstandard.decompress(stale.content) == zstandard.decompress(fresh.content)


def test_a_stopped_upstream_serves_the_cache_and_names_itself_when_nothing_is_cached(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = start_server(tmp_path_factory.mktemp("stopped") / "data", ENV)
    try:
        with static_upstream() as upstream:
            chan = Channel(upstream)
            filename, data = chan.add("six", "1.16.0")
            chan.publish()
            server.run_cli(
                "repo", "create", "gone", "-f", "conda", "--upstream", chan.url, "--ttl", "0"
            )
            assert filename in files(get(server, "/conda/gone/noarch/repodata.json"))
            assert get(server, f"/conda/gone/noarch/{filename}").content == data
        stale = get(server, "/conda/gone/noarch/repodata.json")
        assert filename in files(stale)
        assert stale.headers["warning"] == '110 - "Response is Stale"'
        assert get(server, f"/conda/gone/noarch/{filename}").content == data
        missing = get(server, "/conda/gone/linux-64/repodata.json")
        assert missing.status_code == 502
        assert f"127.0.0.1:{upstream.port}" in missing.text
        assert "Traceback" not in missing.text
    finally:
        stop_server(server)


def test_a_slow_upstream_times_out_with_a_clear_504(proxy: RunningServer, public: Channel) -> None:
    public.upstream.delay = 3.0
    try:
        response = get(proxy, "/conda/steady/osx-arm64/repodata.json")
    finally:
        public.upstream.delay = 0.0
    assert response.status_code == 504
    assert "timed out" in response.text


def test_a_package_whose_hash_disagrees_is_a_502_and_nothing_is_kept(
    proxy: RunningServer, public: Channel
) -> None:
    public.upstream.documents["/chan/noarch/broken-1.0-0.conda"] = Document(b"not the package")
    assert "broken-1.0-0.conda" in files(get(proxy, "/conda/steady/noarch/repodata.json"))
    response = get(proxy, "/conda/steady/noarch/broken-1.0-0.conda")
    assert response.status_code == 502
    assert "does not match the sha256" in response.text
    stored = [p.read_bytes() for p in (proxy.data / "blobs").rglob("*") if p.is_file()]
    assert b"not the package" not in stored
    assert not list((proxy.data / "tmp").glob("incoming-*"))


def test_oversize_repodata_is_refused(proxy: RunningServer, public: Channel) -> None:
    huge = json.dumps({"info": {"subdir": "win-64"}, "packages": {}, "pad": "x" * 300_000})
    public.upstream.documents["/chan/win-64/repodata.json"] = Document(huge.encode())
    bomb = zstandard.compress(huge.encode())  # small on the wire, too big once read
    public.upstream.documents["/chan/win-arm64/repodata.json.zst"] = Document(bomb)
    for subdir in ("win-64", "win-arm64"):
        response = get(proxy, f"/conda/steady/{subdir}/repodata.json")
        assert response.status_code == 502, response.text
        assert "200000 bytes" in response.text


def test_a_redirect_to_a_refused_address_is_not_followed(
    proxy: RunningServer, public: Channel
) -> None:
    with static_upstream("127.0.0.2") as internal:
        internal.documents["/chan/zos-z/repodata.json"] = Document(b"{}")
        public.upstream.documents["/chan/zos-z/repodata.json.zst"] = Document(
            b"", status=302, headers={"Location": f"{internal.url}/chan/zos-z/repodata.json"}
        )
        response = get(proxy, "/conda/steady/zos-z/repodata.json")
        assert response.status_code == 502
        assert "127.0.0.2" in response.text
        assert internal.requests == []


def test_offline_serves_only_what_is_cached(proxy: RunningServer, public: Channel) -> None:
    assert files(get(proxy, "/conda/steady/noarch/repodata.json"))
    proxy.run_cli("repo", "update", "steady", "-f", "conda", "--offline")
    try:
        before = len(public.upstream.requests)
        assert files(get(proxy, "/conda/steady/noarch/repodata.json"))
        assert files(get(proxy, "/conda/steady/linux-aarch64/repodata.json")) == set()
        assert get(proxy, "/conda/steady/noarch/six-1.16.0-0.conda").status_code == 404
        assert len(public.upstream.requests) == before
    finally:
        proxy.run_cli("repo", "update", "steady", "-f", "conda", "--online")


def test_concurrent_requests_make_one_upstream_fetch(proxy: RunningServer, public: Channel) -> None:
    filename, data = public.add("together", "1.0", subdir="linux-32")
    public.publish()
    public.upstream.delay = 0.3  # every request arrives while the first one waits
    try:
        with ThreadPoolExecutor(12) as pool:
            pages = list(
                pool.map(lambda _: get(proxy, "/conda/steady/linux-32/repodata.json"), range(12))
            )
            downloads = list(
                pool.map(lambda _: get(proxy, f"/conda/steady/linux-32/{filename}"), range(12))
            )
    finally:
        public.upstream.delay = 0.0
    assert all(filename in files(p) for p in pages)
    assert {r.content for r in downloads} == {data}
    assert len(public.upstream.asked("/linux-32/repodata.json")) == 1
    assert len(public.upstream.asked(f"/linux-32/{filename}")) == 1
