"""A conda group of a hosted channel and several proxies, in-process: upstream CEP 16 shards
are read for every proxy whose upstream serves them, with or without a cooldown, and the
sharded view gives the very records the monolithic repodata.json gives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from tests.services.test_conda_sources import put
from tests.services.test_conda_sources_proxy import (
    NOW_MS,
    OLD_MS,
    Channel,
    body,
    proxy_services,
    repo,
)
from tests.upstream_server import StaticUpstream, static_upstream

from packhouse.formats.conda.remote import unpack_record
from packhouse.services.repos import RepoSettings, create_repository, update_repository
from packhouse.types import Format, RepoKind
from packhouse.wiring import Services


@pytest.fixture
def upstreams() -> Iterator[tuple[StaticUpstream, StaticUpstream]]:
    with static_upstream() as one, static_upstream() as two:
        yield one, two


@pytest.fixture
def channels(upstreams: tuple[StaticUpstream, StaticUpstream]) -> tuple[Channel, Channel, Channel]:
    """`a` and `b` shard their subdirs; `c` (on the same server as `b`) does not."""
    a, b, c = Channel(upstreams[0]), Channel(upstreams[1], "/b"), Channel(upstreams[1], "/c")
    a.add("six", "1.16.0", timestamp=OLD_MS)
    a.add("six", "1.17.0", timestamp=NOW_MS)  # young
    a.add("fresh", "1.0", timestamp=NOW_MS)  # every record young: held back whole
    a.add("acme", "99.0")  # squats the hosted name
    a.add("indexed", "1.0", timestamp=OLD_MS, indexed_timestamp=NOW_MS)  # CEP 47: young
    a.add("indexed", "0.9", timestamp=OLD_MS // 1000)  # seconds
    b.add("six", "1.16.0", timestamp=OLD_MS, license="other")  # a's record wins
    b.add("six", "1.15.0", timestamp=OLD_MS)
    b.add("other", "1.0", timestamp=OLD_MS)
    b.add("bfresh", "2.0", timestamp=NOW_MS)
    c.add("plain", "1.0", timestamp=OLD_MS)
    c.add("plain", "2.0", timestamp=NOW_MS)
    a.publish(shards=True)
    b.publish(shards=True)
    c.publish()
    return a, b, c


@pytest.fixture
def svc(tmp_path: Path, channels: tuple[Channel, Channel, Channel]) -> Iterator[Services]:
    services = proxy_services(tmp_path)
    ctx = services.ctx
    for name, chan in zip(("pa", "pb", "pc"), channels, strict=True):
        create_repository(
            ctx, actor="t", name=name, fmt=Format.CONDA, kind=RepoKind.PROXY, upstream_url=chan.url
        )
    create_repository(ctx, actor="t", name="main", fmt=Format.CONDA)
    create_repository(
        ctx, actor="t", name="grp", fmt=Format.CONDA, bases=["main", "pa", "pb", "pc"]
    )
    put(services, "main", "acme", "1.0")
    yield services
    services.close()


def monolithic(svc: Services, channel: str, subdir: str = "noarch") -> dict[str, dict[str, Any]]:
    """{name: {filename: record}} of repodata.json."""
    doc = json.loads(body(svc, channel, "repodata.json", subdir))
    by_name: dict[str, dict[str, Any]] = {}
    for filename, record in {**doc["packages"], **doc["packages.conda"]}.items():
        by_name.setdefault(record["name"], {})[filename] = record
    return by_name


def sharded(svc: Services, channel: str, subdir: str = "noarch") -> dict[str, dict[str, Any]]:
    """{name: {filename: record}} of the shard index and its shards (hex digests)."""
    index = msgpack.unpackb(
        zstandard.decompress(body(svc, channel, "repodata_shards.msgpack.zst", subdir))
    )
    by_name: dict[str, dict[str, Any]] = {}
    for name, digest in index["shards"].items():
        data = svc.conda.shard(repo(svc, channel), subdir, digest.hex())
        shard = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(data, 1 << 24))
        records = {**shard["packages"], **shard["packages.conda"]}
        by_name[name] = {f: unpack_record(r) for f, r in records.items()}
    return by_name


def cool(svc: Services, **settings: Any) -> None:
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="grp", settings=RepoSettings(**settings)
    )


def test_several_sharded_proxies_without_a_cooldown(
    svc: Services, channels: tuple[Channel, Channel, Channel]
) -> None:
    a, b, c = channels
    view = sharded(svc, "grp")
    assert set(view) == {"acme", "six", "fresh", "indexed", "other", "bfresh", "plain"}
    assert set(view["acme"]) == {"acme-1.0-0.conda"}  # the hosted one only
    assert set(view["six"]) == {"six-1.15.0-0.conda", "six-1.16.0-0.conda", "six-1.17.0-0.conda"}
    assert view["six"]["six-1.16.0-0.conda"]["license"] == "MIT"  # the first proxy's record
    # sharded upstreams were read by their shards, never their whole repodata
    assert a.upstream.asked("/chan/noarch/repodata.json") == []
    assert b.upstream.asked("/b/noarch/repodata.json") == []
    assert c.upstream.asked("/c/noarch/repodata.json") == ["/c/noarch/repodata.json.zst"]
    assert a.upstream.asked(a.upstream_digest("noarch", "acme").hex()) == []
    assert view == monolithic(svc, "grp")


@pytest.mark.parametrize(
    "setting",
    [
        {"min_age": 3 * 86400},
        {"exclude_newer": datetime.now(UTC) - timedelta(days=3)},
    ],
    ids=["min-age", "exclude-newer"],
)
def test_a_cooldown_filters_inside_each_shard_and_drops_names_held_back_whole(
    svc: Services, channels: tuple[Channel, Channel, Channel], setting: dict[str, Any]
) -> None:
    a, b, _ = channels
    cool(svc, **setting)
    view = sharded(svc, "grp")
    assert set(view) == {"acme", "six", "indexed", "other", "plain"}  # no fresh, no bfresh
    assert set(view["six"]) == {"six-1.15.0-0.conda", "six-1.16.0-0.conda"}
    assert set(view["indexed"]) == {"indexed-0.9-0.conda"}
    assert set(view["plain"]) == {"plain-1.0-0.conda"}
    assert a.upstream.asked("/chan/noarch/repodata.json") == []
    assert b.upstream.asked("/b/noarch/repodata.json") == []
    assert a.upstream.asked(a.upstream_digest("noarch", "acme").hex()) == []
    assert view == monolithic(svc, "grp")
    # a name exempt from the cooldown comes back, in both views
    cool(svc, cooldown_exempt=["fresh"])
    again = sharded(svc, "grp")
    assert set(again["fresh"]) == {"fresh-1.0-0.conda"}
    assert again == monolithic(svc, "grp")
    # a download the cooldown holds back is not found through the group either
    with pytest.raises(Exception, match="no package"):
        svc.conda.find_package(repo(svc, "grp"), "noarch", "six-1.17.0-0.conda")
