"""Conda channels read through their resolution order, in-process: own records, then bases
depth-first; every page kind, shards, channeldata and downloads; caching by every member's
serial."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
import zstandard
from tests.builders import synth

from packhouse.db.repository_store import Repository
from packhouse.errors import ArtifactNotFound
from packhouse.services.access import Principal
from packhouse.services.conda_uploads import set_patch_instructions, upload_conda
from packhouse.services.repos import RepoSettings, create_repository, update_repository
from packhouse.storage.base import IncomingFile
from packhouse.types import Format
from packhouse.wiring import Services

ADMIN = Principal("admin", 1, True)


@pytest.fixture
def svc(memory_services: Services) -> Services:
    """`a` and `b` hosted, `mid` = mid's own + [b], `grp` = grp's own + [a, mid]."""
    ctx = memory_services.ctx
    for name in ("a", "b"):
        create_repository(ctx, actor="t", name=name, fmt=Format.CONDA)
    create_repository(ctx, actor="t", name="mid", fmt=Format.CONDA, bases=["b"])
    create_repository(ctx, actor="t", name="grp", fmt=Format.CONDA, bases=["a", "mid"])
    return memory_services


def repo(svc: Services, name: str) -> Repository:
    return svc.catalog.get(Format.CONDA, name)


def put(svc: Services, channel: str, name: str, version: str, **kwargs: Any) -> str:
    filename, data = synth.package_bytes(name, version, **kwargs)
    incoming = IncomingFile(svc.ctx.tmp_dir, 1 << 30)
    try:
        incoming.write(data)
        incoming.finish()
        upload_conda(svc.ctx, repo(svc, channel), ADMIN, filename, incoming, None)
    finally:
        incoming.discard()
    return filename


def page(svc: Services, channel: str, kind: str, subdir: str = "noarch") -> bytes:
    return svc.conda.page(repo(svc, channel), subdir, kind).body


def records(svc: Services, channel: str, subdir: str = "noarch") -> dict[str, Any]:
    doc = json.loads(page(svc, channel, "repodata.json", subdir))
    return {**doc["packages"], **doc["packages.conda"]}


def shards(svc: Services, channel: str, subdir: str = "noarch") -> dict[str, Any]:
    index = msgpack.unpackb(zstandard.decompress(page(svc, channel, "repodata_shards.msgpack.zst")))
    found: dict[str, Any] = {}
    for name, digest in index["shards"].items():
        data = svc.conda.shard(repo(svc, channel), subdir, digest.hex())
        found[name] = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(data, 1 << 24))
    return found


def test_a_channel_with_bases_serves_its_own_records_then_its_bases(svc: Services) -> None:
    own = put(svc, "grp", "own", "1.0")
    in_a = put(svc, "a", "alpha", "1.0", extension=".tar.bz2")
    in_b = put(svc, "b", "beta", "1.0", depends=["alpha"])
    assert set(records(svc, "grp")) == {own, in_a, in_b}
    assert set(records(svc, "mid")) == {in_b}
    doc = json.loads(page(svc, "grp", "repodata.json"))
    assert set(doc["packages"]) == {in_a}
    assert doc["info"] == {"subdir": "noarch"}
    zst = json.loads(zstandard.decompress(page(svc, "grp", "repodata.json.zst")))
    assert zst == doc
    current = json.loads(page(svc, "grp", "current_repodata.json"))
    assert set(current["packages.conda"]) == {own, in_b}
    unpatched = json.loads(page(svc, "grp", "repodata_from_packages.json"))
    assert {*unpatched["packages"], *unpatched["packages.conda"]} == {own, in_a, in_b}
    found = shards(svc, "grp")
    assert set(found) == {"own", "alpha", "beta"}
    assert set(found["alpha"]["packages"]) == {in_a}
    assert found["beta"]["packages.conda"][in_b]["depends"] == ["alpha"]
    channeldata = json.loads(svc.conda.channeldata(repo(svc, "grp")).body)
    assert set(channeldata["packages"]) == {"own", "alpha", "beta"}
    run_exports = json.loads(page(svc, "grp", "run_exports.json"))
    assert set(run_exports["packages"]) == {in_a}
    assert "alpha-1.0-0.tar.bz2" in page(svc, "grp", "index.html").decode()
    for filename, holder in ((own, "grp"), (in_a, "a"), (in_b, "b")):
        artifact = svc.conda.find_package(repo(svc, "grp"), "noarch", filename)
        assert artifact.repository_id == repo(svc, holder).id
    with pytest.raises(ArtifactNotFound):
        svc.conda.find_package(repo(svc, "mid"), "noarch", in_a)  # not in mid's order
    with pytest.raises(ArtifactNotFound):
        svc.conda.find_package(repo(svc, "grp"), "linux-64", in_a)  # another subdir


def test_the_first_member_to_hold_a_filename_wins(svc: Services) -> None:
    filename = put(svc, "b", "same", "1.0", timestamp=1)
    put(svc, "a", "same", "1.0", timestamp=2)
    put(svc, "b", "same", "2.0")
    served = records(svc, "grp")
    assert served[filename]["timestamp"] == 2  # a's, before mid's base b
    assert set(served) == {filename, "same-2.0-0.conda"}
    shard = shards(svc, "grp")["same"]
    assert shard["packages.conda"][filename]["timestamp"] == 2
    artifact = svc.conda.find_package(repo(svc, "grp"), "noarch", filename)
    assert artifact.repository_id == repo(svc, "a").id
    assert records(svc, "mid")[filename]["timestamp"] == 1


def test_pages_change_with_any_member_and_are_kept_otherwise(svc: Services) -> None:
    put(svc, "a", "alpha", "1.0")
    first = svc.conda.page(repo(svc, "grp"), "noarch", "repodata.json")
    assert svc.conda.page(repo(svc, "grp"), "noarch", "repodata.json") is first
    index_before = shards(svc, "grp")
    put(svc, "b", "beta", "1.0")  # two levels down
    second = svc.conda.page(repo(svc, "grp"), "noarch", "repodata.json")
    assert second.etag != first.etag
    assert "beta-1.0-0.conda" in json.loads(second.body)["packages.conda"]
    # the serial moved for an unrelated subdir and channel: the same bytes are served
    put(svc, "b", "other", "1.0", subdir="linux-64")
    assert svc.conda.page(repo(svc, "grp"), "noarch", "repodata.json").etag == second.etag
    after = shards(svc, "grp")
    assert after["alpha"] == index_before["alpha"]
    # a patch of a base applies to what the group serves
    set_patch_instructions(
        svc.ctx, repo(svc, "b"), ADMIN, "noarch",
        b'{"packages.conda": {"beta-1.0-0.conda": {"depends": ["patched"]}}}',
    )  # fmt: skip
    assert records(svc, "grp")["beta-1.0-0.conda"]["depends"] == ["patched"]
    unpatched = json.loads(page(svc, "grp", "repodata_from_packages.json"))
    assert unpatched["packages.conda"]["beta-1.0-0.conda"]["depends"] == []
    assert shards(svc, "grp")["beta"]["packages.conda"]["beta-1.0-0.conda"]["depends"] == [
        "patched"
    ]


def test_bases_changed_later_are_read_at_once(svc: Services) -> None:
    put(svc, "a", "alpha", "1.0")
    put(svc, "b", "beta", "1.0")
    assert set(records(svc, "grp")) == {"alpha-1.0-0.conda", "beta-1.0-0.conda"}
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="grp", settings=RepoSettings(bases=["b"])
    )
    assert set(records(svc, "grp")) == {"beta-1.0-0.conda"}
    with pytest.raises(ArtifactNotFound):
        svc.conda.find_package(repo(svc, "grp"), "noarch", "alpha-1.0-0.conda")


def test_subdirs_no_member_holds_keep_no_state(svc: Services) -> None:
    put(svc, "a", "alpha", "1.0")
    assert records(svc, "grp")
    orders = dict(svc.conda._orders)
    for n in range(50):
        assert records(svc, "grp", f"b-{n}") == {}
        with pytest.raises(ArtifactNotFound):
            svc.conda.shard(repo(svc, "grp"), f"b-{n}", "0" * 64)
    assert svc.conda._orders == orders
