"""Conda proxies in-process, against a static channel on loopback that records what it is
asked: repodata streamed into per-name records, the confusion rule per name and subdir,
cooldowns, revalidation, stale copies, shards and downloads checked by sha256."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from tests.builders import synth
from tests.services.test_conda_sources import put
from tests.upstream_server import Document, StaticUpstream, static_upstream

from packhouse.config import Settings
from packhouse.db.engine import Database
from packhouse.db.repository_store import Repository
from packhouse.errors import ArtifactNotFound, UpstreamError
from packhouse.formats.conda.shards import build_shard, build_shards_index
from packhouse.services.conda_proxied import FilePage
from packhouse.services.conda_proxy import ProxiedPackage
from packhouse.services.context import Context
from packhouse.services.repos import RepoSettings, create_repository, update_repository
from packhouse.storage.memory import MemoryBlobStore
from packhouse.types import Format, RepoKind
from packhouse.wiring import Services

NOW_MS = int(datetime.now(UTC).timestamp() * 1000)
OLD_MS = NOW_MS - 30 * 86400 * 1000


class Channel:
    """A static upstream channel: packages made by bench/conda_synth.py, repodata written
    from their records (as `conda index` would), served by a StaticUpstream."""

    def __init__(self, upstream: StaticUpstream, prefix: str = "/chan") -> None:
        self.upstream = upstream
        self.prefix = prefix
        self.files: dict[str, dict[str, tuple[dict[str, Any], bytes]]] = {}

    @property
    def url(self) -> str:
        return self.upstream.url + self.prefix

    def add(
        self, name: str, version: str, subdir: str = "noarch", **record: Any
    ) -> tuple[str, bytes]:
        extension = ".tar.bz2" if record.pop("bz2", False) else ".conda"
        filename, data = synth.package_bytes(name, version, subdir=subdir, extension=extension)
        entry = {
            "build": "0",
            "build_number": 0,
            "depends": record.pop("depends", []),
            "license": "MIT",
            "md5": hashlib.md5(data).hexdigest(),  # noqa: S324 (conda's record field)
            "name": name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "subdir": subdir,
            "timestamp": OLD_MS,
            "version": version,
            **record,
        }
        self.files.setdefault(subdir, {})[filename] = (entry, data)
        self.upstream.documents[f"{self.prefix}/{subdir}/{filename}"] = Document(data)
        return filename, data

    def publish(
        self, zst: bool = True, extra: dict[str, Any] | None = None, shards: bool = False
    ) -> None:
        for subdir, files in self.files.items():
            if shards:
                self._shards(subdir, files)
            doc: dict[str, Any] = {
                "info": {"subdir": subdir},
                "packages": {f: r for f, (r, _) in files.items() if f.endswith(".tar.bz2")},
                "packages.conda": {f: r for f, (r, _) in files.items() if f.endswith(".conda")},
                "removed": [],
                "repodata_version": 1,
                **(extra or {}),
            }
            body = json.dumps(doc, indent=1).encode()
            base = f"{self.prefix}/{subdir}/repodata.json"
            self.upstream.documents[base] = Document(body, "application/json")
            if zst:
                self.upstream.documents[base + ".zst"] = Document(zstandard.compress(body))
            else:
                self.upstream.documents.pop(base + ".zst", None)

    def _shards(self, subdir: str, files: dict[str, tuple[dict[str, Any], bytes]]) -> None:
        """CEP 16: a shard per name under shards/, and the index."""
        by_name: dict[str, dict[str, dict[str, Any]]] = {}
        for filename, (record, _) in files.items():
            by_name.setdefault(record["name"], {})[filename] = record
        digests = {}
        for name, found in by_name.items():
            shard = build_shard(
                name,
                {f: r for f, r in found.items() if f.endswith(".tar.bz2")},
                {f: r for f, r in found.items() if f.endswith(".conda")},
            )
            digests[name] = shard.digest
            self.upstream.documents[f"{self.prefix}/{subdir}/shards/{shard.filename}"] = Document(
                shard.data
            )
        index = build_shards_index(subdir, digests, shards_base_url="./shards/")
        self.upstream.documents[f"{self.prefix}/{subdir}/repodata_shards.msgpack.zst"] = Document(
            index
        )

    def upstream_digest(self, subdir: str, name: str) -> bytes:
        data = self.upstream.documents[f"{self.prefix}/{subdir}/repodata_shards.msgpack.zst"].body
        digest: bytes = msgpack.unpackb(zstandard.decompress(data))["shards"][name]
        return digest


@pytest.fixture(name="upstream")
def upstream_fixture() -> Iterator[StaticUpstream]:
    with static_upstream() as server:
        yield server


@pytest.fixture(name="channel")
def channel_fixture(upstream: StaticUpstream) -> Channel:
    chan = Channel(upstream)
    chan.add("six", "1.16.0", depends=["python"])
    chan.add("six", "1.17.0", bz2=True)
    chan.add("acme", "99.0")  # a squatted private name
    chan.add("acme", "99.0", subdir="linux-64")
    chan.add("numpy", "2.0", subdir="linux-64")
    chan.publish()
    return chan


def proxy_services(tmp_path: Path) -> Services:
    """Services over an in-memory database and blob store that may ask loopback upstreams."""
    settings = Settings(data=tmp_path, upstream_allowed_networks=["127.0.0.1/32"])
    db = Database("sqlite://")
    db.upgrade()
    (tmp_path / "tmp").mkdir()
    return Services.of(Context(settings=settings, db=db, blobs=MemoryBlobStore()))


@pytest.fixture(name="svc")
def svc_fixture(tmp_path: Path, channel: Channel) -> Iterator[Services]:
    services = proxy_services(tmp_path)
    ctx = services.ctx
    create_repository(
        ctx, actor="t", name="forge", fmt=Format.CONDA, kind=RepoKind.PROXY,
        upstream_url=channel.url,
    )  # fmt: skip
    create_repository(ctx, actor="t", name="main", fmt=Format.CONDA)
    create_repository(ctx, actor="t", name="grp", fmt=Format.CONDA, bases=["main", "forge"])
    put(services, "main", "acme", "1.0")  # noarch only
    yield services
    services.close()


def repo(svc: Services, name: str) -> Repository:
    return svc.catalog.get(Format.CONDA, name)


def body(svc: Services, channel: str, kind: str, subdir: str = "noarch") -> bytes:
    page = svc.conda.page(repo(svc, channel), subdir, kind)
    return page.read() if isinstance(page, FilePage) else page.body


def records(svc: Services, channel: str, subdir: str = "noarch") -> dict[str, Any]:
    doc = json.loads(body(svc, channel, "repodata.json", subdir))
    return {**doc["packages"], **doc["packages.conda"]}


def shard_names(svc: Services, channel: str, subdir: str = "noarch") -> dict[str, Any]:
    index = msgpack.unpackb(
        zstandard.decompress(body(svc, channel, "repodata_shards.msgpack.zst", subdir))
    )
    found = {}
    for name, digest in index["shards"].items():
        data = svc.conda.shard(repo(svc, channel), subdir, digest.hex())
        assert hashlib.sha256(data).digest() == digest
        found[name] = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(data, 1 << 24))
    return found


def test_a_proxy_serves_the_upstream_records_it_can_check(svc: Services, channel: Channel) -> None:
    served = records(svc, "forge")
    upstream = {f: r for f, (r, _) in channel.files["noarch"].items()}
    assert served == upstream
    assert set(records(svc, "forge", "linux-64")) == set(channel.files["linux-64"])
    assert channel.upstream.asked("/noarch/repodata.json") == ["/chan/noarch/repodata.json.zst"]
    zst = json.loads(zstandard.decompress(body(svc, "forge", "repodata.json.zst")))
    assert {**zst["packages"], **zst["packages.conda"]} == upstream
    bz2 = body(svc, "forge", "repodata.json.bz2")
    import bz2 as bz2lib

    assert json.loads(bz2lib.decompress(bz2))["packages"] == zst["packages"]
    current = json.loads(body(svc, "forge", "current_repodata.json"))
    assert set(current["packages"]) == {"six-1.17.0-0.tar.bz2"}
    assert set(current["packages.conda"]) == {"acme-99.0-0.conda"}
    shards = shard_names(svc, "forge")
    assert set(shards) == {"six", "acme"}
    assert shards["six"]["packages"]["six-1.17.0-0.tar.bz2"]["sha256"] == bytes.fromhex(
        upstream["six-1.17.0-0.tar.bz2"]["sha256"]
    )


def test_records_that_cannot_be_checked_are_left_out(svc: Services, channel: Channel) -> None:
    channel.add("nohash", "1.0", sha256=None)
    liar, _ = channel.add("liar", "1.0")
    channel.files["noarch"][liar][0]["name"] = "other"
    good, _ = channel.files["noarch"]["six-1.16.0-0.conda"]
    escape = {**good, "name": "escape", "version": "1.0"}
    channel.files["noarch"]["../escape-1.0-0.conda"] = (escape, b"")
    channel.publish(zst=False)
    served = records(svc, "forge")
    assert "nohash-1.0-0.conda" not in served
    assert "liar-1.0-0.conda" not in served
    assert not [f for f in served if "/" in f]
    assert "six-1.16.0-0.conda" in served
    # no .zst upstream: the plain document, asked for again with its ETag later
    assert channel.upstream.asked("/noarch/repodata.json")[-1] == "/chan/noarch/repodata.json"


def test_the_confusion_rule_holds_per_name_and_subdir(svc: Services, channel: Channel) -> None:
    noarch = records(svc, "grp")
    assert set(noarch) == {"acme-1.0-0.conda", "six-1.16.0-0.conda", "six-1.17.0-0.tar.bz2"}
    # acme is hosted in noarch only: in linux-64 the upstream's acme is served
    assert set(records(svc, "grp", "linux-64")) == {"acme-99.0-0.conda", "numpy-2.0-0.conda"}
    shards = shard_names(svc, "grp")
    assert set(shards["acme"]["packages.conda"]) == {"acme-1.0-0.conda"}
    with pytest.raises(ArtifactNotFound):
        svc.conda.find_package(repo(svc, "grp"), "noarch", "acme-99.0-0.conda")
    assert channel.upstream.asked("acme-99.0") == []
    # allowed: the upstream's records join the hosted ones
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="grp",
        settings=RepoSettings(allow_upstream=["acme"]),
    )  # fmt: skip
    assert {"acme-1.0-0.conda", "acme-99.0-0.conda"} <= set(records(svc, "grp"))
    found = svc.conda.find_package(repo(svc, "grp"), "noarch", "acme-99.0-0.conda")
    assert isinstance(found, ProxiedPackage)
    assert set(shard_names(svc, "grp")["acme"]["packages.conda"]) == {
        "acme-1.0-0.conda",
        "acme-99.0-0.conda",
    }


def test_a_download_is_fetched_once_and_checked(svc: Services, channel: Channel) -> None:
    filename = "six-1.16.0-0.conda"
    found = svc.conda.find_package(repo(svc, "grp"), "noarch", filename)
    assert isinstance(found, ProxiedPackage)
    stored = found.fetch()
    assert svc.ctx.blobs.open(stored.sha256).read() == channel.files["noarch"][filename][1]
    again = svc.conda.find_package(repo(svc, "grp"), "noarch", filename)
    assert isinstance(again, ProxiedPackage)
    again.fetch()
    assert len(channel.upstream.asked(filename)) == 1
    # bytes that do not match the record: an error, and nothing kept
    wrong = "six-1.17.0-0.tar.bz2"
    channel.upstream.documents[f"/chan/noarch/{wrong}"] = Document(b"not the package")
    liar = svc.conda.find_package(repo(svc, "forge"), "noarch", wrong)
    assert isinstance(liar, ProxiedPackage)
    with pytest.raises(UpstreamError, match="does not match the sha256"):
        liar.fetch()
    kept = svc.ctx.blobs
    assert isinstance(kept, MemoryBlobStore)
    assert b"not the package" not in kept.blobs.values()


def test_cooldowns_hide_young_records_by_their_published_time(
    svc: Services, channel: Channel
) -> None:
    channel.add("young", "1.0", timestamp=NOW_MS)  # milliseconds
    channel.add("young", "0.9", timestamp=OLD_MS // 1000)  # seconds
    channel.add("indexed", "1.0", timestamp=OLD_MS, indexed_timestamp=NOW_MS)  # CEP 47
    channel.add("timeless", "1.0", timestamp=None)
    channel.publish()
    assert {"young-1.0-0.conda", "indexed-1.0-0.conda"} <= set(records(svc, "grp"))
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="grp",
        settings=RepoSettings(min_age=3 * 86400),
    )  # fmt: skip
    served = records(svc, "grp")
    assert "young-0.9-0.conda" in served
    assert "young-1.0-0.conda" not in served
    assert "indexed-1.0-0.conda" not in served
    assert "timeless-1.0-0.conda" not in served  # its age is unknown
    assert "acme-1.0-0.conda" in served  # hosted: no cooldown
    assert set(shard_names(svc, "grp")["young"]["packages.conda"]) == {"young-0.9-0.conda"}
    with pytest.raises(ArtifactNotFound):
        svc.conda.find_package(repo(svc, "grp"), "noarch", "young-1.0-0.conda")
    assert "young-1.0-0.conda" in records(svc, "forge")  # the proxy itself has no cooldown
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="grp",
        settings=RepoSettings(cooldown_exempt=["young"]),
    )  # fmt: skip
    assert "young-1.0-0.conda" in records(svc, "grp")
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="forge",
        settings=RepoSettings(exclude_newer=datetime.now(UTC) - timedelta(days=60)),
    )  # fmt: skip
    assert records(svc, "forge") == {}


def test_revalidation_stale_copies_and_offline(svc: Services, channel: Channel) -> None:
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="forge", settings=RepoSettings(ttl=0)
    )
    first = svc.conda.page(repo(svc, "forge"), "noarch", "repodata.json")
    asked = len(channel.upstream.requests)
    again = svc.conda.page(repo(svc, "forge"), "noarch", "repodata.json")
    assert again.etag == first.etag
    assert channel.upstream.requests[asked:] == ["/chan/noarch/repodata.json.zst"]  # a 304
    channel.upstream.documents["/chan/noarch/repodata.json.zst"] = Document(b"down", status=503)
    stale = svc.conda.page(repo(svc, "forge"), "noarch", "repodata.json")
    assert stale.stale
    assert json.loads(stale.read() if isinstance(stale, FilePage) else stale.body)["packages"]
    assert records(svc, "forge", "osx-64") == {}  # the upstream has no such subdir
    channel.upstream.documents["/chan/win-32/repodata.json.zst"] = Document(b"", status=503)
    with pytest.raises(UpstreamError, match=f"127.0.0.1:{channel.upstream.port}"):
        svc.conda.page(repo(svc, "forge"), "win-32", "repodata.json")
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="forge", settings=RepoSettings(offline=True)
    )
    asked = len(channel.upstream.requests)
    assert records(svc, "forge", "win-64") == {}
    assert records(svc, "forge")
    assert len(channel.upstream.requests) == asked


def test_a_shorter_ttl_counts_at_once_for_what_is_kept(svc: Services, channel: Channel) -> None:
    """`repo update --ttl` on a proxy whose repodata is kept in memory for the old ttl (600 s
    by default): the next request asks the upstream again, not when the old ttl runs out."""
    svc.conda.page(repo(svc, "forge"), "noarch", "repodata.json")
    svc.conda.page(repo(svc, "forge"), "noarch", "repodata.json")
    assert len(channel.upstream.asked("/noarch/repodata.json")) == 1  # within the ttl
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="forge", settings=RepoSettings(ttl=0)
    )
    svc.conda.page(repo(svc, "forge"), "noarch", "repodata.json")
    assert len(channel.upstream.asked("/noarch/repodata.json")) == 2  # revalidated (a 304)


def test_a_proxy_of_a_wrong_channel_url_says_so(svc: Services, channel: Channel) -> None:
    """An upstream without noarch is a wrong URL (every channel has one): a 502 that says
    so, not an empty channel; a platform subdir the upstream lacks is empty, as in conda."""
    create_repository(
        svc.ctx,
        actor="t",
        name="typo",
        fmt=Format.CONDA,
        kind=RepoKind.PROXY,
        upstream_url=channel.url + "-typo",
    )
    with pytest.raises(
        UpstreamError, match=r"has no noarch subdir .* upstream URL is likely wrong"
    ):
        svc.conda.page(repo(svc, "typo"), "noarch", "repodata.json")
    assert records(svc, "typo", "osx-64") == {}
    assert records(svc, "forge", "osx-64") == {}  # a real channel without that subdir


def test_pages_are_rendered_once_per_change(svc: Services, channel: Channel) -> None:
    first = svc.conda.page(repo(svc, "grp"), "noarch", "repodata.json")
    assert svc.conda.page(repo(svc, "grp"), "noarch", "repodata.json") is first
    put(svc, "main", "later", "1.0")
    second = svc.conda.page(repo(svc, "grp"), "noarch", "repodata.json")
    assert second.etag != first.etag
    assert "later-1.0-0.conda" in records(svc, "grp")
    assert len(channel.upstream.asked("/noarch/repodata.json")) == 1  # within the ttl


def test_an_upstream_that_shards_is_read_by_its_shards(svc: Services, channel: Channel) -> None:
    channel.publish(shards=True)
    asked = channel.upstream.asked
    index = msgpack.unpackb(zstandard.decompress(body(svc, "grp", "repodata_shards.msgpack.zst")))
    assert set(index["shards"]) == {"acme", "six"}
    # a name only the upstream has: the upstream's own shard, under its digest
    six = index["shards"]["six"]
    assert six == channel.upstream_digest("noarch", "six")
    served = svc.conda.shard(repo(svc, "grp"), "noarch", six.hex())
    assert served == channel.upstream.documents[f"/chan/noarch/shards/{six.hex()}.msgpack.zst"].body
    # the hosted name: its own shard; the upstream is not asked for acme's shard
    acme = msgpack.unpackb(
        zstandard.ZstdDecompressor().decompress(
            svc.conda.shard(repo(svc, "grp"), "noarch", index["shards"]["acme"].hex()), 1 << 20
        )
    )
    assert set(acme["packages.conda"]) == {"acme-1.0-0.conda"}
    acme_shard = channel.upstream_digest("noarch", "acme").hex()
    assert asked(acme_shard) == []
    # a download found through the shard, not the whole repodata
    found = svc.conda.find_package(repo(svc, "grp"), "noarch", "six-1.16.0-0.conda")
    assert isinstance(found, ProxiedPackage)
    assert (
        svc.ctx.blobs.open(found.fetch().sha256).read()
        == channel.files["noarch"]["six-1.16.0-0.conda"][1]
    )
    assert asked("/noarch/repodata.json") == []
    assert len(asked(f"/noarch/shards/{six.hex()}")) == 1  # kept once fetched
    # allowed: the upstream's shard of acme is fetched and merged with the hosted records
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="grp",
        settings=RepoSettings(allow_upstream=["acme"]),
    )  # fmt: skip
    merged = shard_names(svc, "grp")["acme"]
    assert set(merged["packages.conda"]) == {"acme-1.0-0.conda", "acme-99.0-0.conda"}
    assert len(asked(acme_shard)) == 1
    # a cooldown goes by the times of the records inside each shard: still no repodata.json
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="grp",
        settings=RepoSettings(min_age=86400),
    )  # fmt: skip
    assert "six" in shard_names(svc, "grp")
    assert asked("/noarch/repodata.json") == []
    assert asked(acme_shard) == [f"/chan/noarch/shards/{acme_shard}.msgpack.zst"]


def test_an_upstream_shard_that_does_not_match_its_digest_is_refused(
    svc: Services, channel: Channel
) -> None:
    channel.publish(shards=True)
    index = msgpack.unpackb(zstandard.decompress(body(svc, "forge", "repodata_shards.msgpack.zst")))
    six = index["shards"]["six"].hex()
    channel.upstream.documents[f"/chan/noarch/shards/{six}.msgpack.zst"] = Document(b"other")
    with pytest.raises(UpstreamError, match="does not match the sha256"):
        svc.conda.shard(repo(svc, "forge"), "noarch", six)


def test_a_changed_upstream_replaces_the_cached_records(svc: Services, channel: Channel) -> None:
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="forge", settings=RepoSettings(ttl=0)
    )
    forge = repo(svc, "forge")
    assert "late-1.0-0.conda" not in records(svc, "forge")
    before = svc.upstreams.read_page(forge.id, "conda/noarch/repodata")
    assert before is not None
    assert before.blob_sha256 is not None
    channel.add("late", "1.0")
    channel.publish()
    assert "late-1.0-0.conda" in records(svc, "forge")
    after = svc.upstreams.read_page(forge.id, "conda/noarch/repodata")
    assert after is not None
    assert after.blob_sha256 != before.blob_sha256
    assert not svc.ctx.blobs.exists(before.blob_sha256)  # no records file left behind
    assert svc.ctx.blobs.exists(after.blob_sha256)
