"""Hosted conda channels in-process: uploads, live repodata, shards, patches, deletes."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
import zstandard
from tests.builders import synth

from packhouse.db import artifact_store, conda_patch_store, journal_store, repository_store
from packhouse.db.repository_store import Repository
from packhouse.errors import ArtifactNotFound, FileExists, InvalidInput, InvalidUpload
from packhouse.formats.conda.archive import read_package
from packhouse.services import manage
from packhouse.services.access import Principal
from packhouse.services.conda_index import IndexOptions, index_channel
from packhouse.services.conda_uploads import set_patch_instructions, subdir_of, upload_conda
from packhouse.services.repos import create_repository
from packhouse.storage.base import IncomingFile
from packhouse.types import Format
from packhouse.wiring import Services

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "conda"
ADMIN = Principal("admin", 1, True)


REAL = [
    *(DATA / "conda" / "conda_format_repo").glob("*/zlib-*"),
    *(DATA / "conda" / "test-recipes" / "noarch").glob("*.conda"),
    DATA / "conda-index" / "archives" / "nano-2.4.1-0.tar.bz2",  # old style, no paths.json
    DATA / "conda-index" / "archives" / "flask-0.11.1-py_0.tar.bz2",  # noarch python
    DATA / "conda-index" / "archives" / "conda-index-pkg-a-1.0-py27h5e241af_0.conda",
    DATA / "conda-index" / "archives" / "conda-index-pkg-a-1.0-py27h5e241af_0.tar.bz2",
]


@pytest.fixture
def svc(memory_services: Services) -> Services:
    create_repository(memory_services.ctx, actor="test", name="ch", fmt=Format.CONDA)
    return memory_services


def repo(svc: Services) -> Repository:
    return svc.catalog.get(Format.CONDA, "ch")


def put(svc: Services, filename: str, data: bytes, subdir: str | None = None) -> bool:
    incoming = IncomingFile(svc.ctx.tmp_dir, 1 << 30)
    try:
        incoming.write(data)
        incoming.finish()
        return upload_conda(svc.ctx, repo(svc), ADMIN, filename, incoming, subdir).created
    finally:
        incoming.discard()


def put_path(svc: Services, path: Path) -> bool:
    return put(svc, path.name, path.read_bytes())


def repodata(svc: Services, subdir: str, kind: str = "repodata.json") -> dict[str, Any]:
    body = svc.conda.page(repo(svc), subdir, kind).body
    value: dict[str, Any] = json.loads(body)
    return value


def records(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc["packages"], **doc["packages.conda"]}


def without_indexed_timestamp(doc: dict[str, Any]) -> dict[str, Any]:
    """A repodata document less CEP 47 `indexed_timestamp`: the static index stamps the time it
    first indexed a package, the server the time of the upload; both must carry one."""
    for record in records(doc).values():
        stamp = record.pop("indexed_timestamp", None)
        assert stamp is None or isinstance(stamp, int)
    return doc


def test_served_records_equal_conda_index_output(svc: Services, tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    for path in REAL:
        subdir = subdir_of(read_package(path).index)
        assert subdir is not None
        (channel / subdir).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, channel / subdir / path.name)
        assert put_path(svc, path)
    report = index_channel(channel, IndexOptions(jobs=1))
    assert not report.failures
    for subdir in report.subdirs:
        static = without_indexed_timestamp(
            json.loads((channel / subdir / "repodata.json").read_bytes())
        )
        served = without_indexed_timestamp(repodata(svc, subdir))
        assert served == static
        zst = svc.conda.page(repo(svc), subdir, "repodata.json.zst").body
        assert without_indexed_timestamp(json.loads(zstandard.decompress(zst))) == static
    # the zlib records are conda-index's own, field by field
    for subdir in ("linux-64", "osx-64", "win-64"):
        expected = records(
            json.loads(
                (DATA / "conda" / "conda_format_repo" / subdir / "repodata.json").read_text()
            )
        )
        served_zlib = {
            fn: r for fn, r in records(repodata(svc, subdir)).items() if fn.startswith("zlib-")
        }
        assert len(served_zlib) == 2
        for filename, record in served_zlib.items():
            record.pop("indexed_timestamp", None)  # CEP 47: when it entered this channel
            assert record == expected[filename]
    channeldata = json.loads(svc.conda.channeldata(repo(svc)).body)
    static_cd = json.loads((channel / "channeldata.json").read_bytes())
    assert channeldata["packages"].keys() == static_cd["packages"].keys()
    assert channeldata["packages"]["zlib"]["subdirs"] == ["linux-64", "osx-64", "win-64"]


def test_every_valid_subdir_answers_with_empty_repodata(svc: Services) -> None:
    for subdir in ("noarch", "emscripten-wasm32", "zos-z", "linux-aarch64"):
        assert repodata(svc, subdir) == {
            "info": {"subdir": subdir},
            "packages": {},
            "packages.conda": {},
            "removed": [],
            "repodata_version": 1,
        }


def test_upload_is_in_the_next_page_and_shards_change_for_one_name(svc: Services) -> None:
    for name in ("alpha", "beta"):
        put(svc, *synth.package_bytes(name, "1.0"))
    index_page = svc.conda.page(repo(svc), "noarch", "repodata_shards.msgpack.zst")
    before = msgpack.unpackb(zstandard.decompress(index_page.body))
    assert before["info"]["shards_base_url"] == "./shards/"
    put(svc, *synth.package_bytes("alpha", "2.0"))
    assert "alpha-2.0-0.conda" in records(repodata(svc, "noarch"))
    index_page = svc.conda.page(repo(svc), "noarch", "repodata_shards.msgpack.zst")
    after = msgpack.unpackb(zstandard.decompress(index_page.body))
    assert after["shards"]["beta"] == before["shards"]["beta"]
    assert after["shards"]["alpha"] != before["shards"]["alpha"]
    shard = svc.conda.shard(repo(svc), "noarch", after["shards"]["alpha"].hex())
    unpacked = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(shard, 1 << 20))
    assert set(unpacked["packages.conda"]) == {"alpha-1.0-0.conda", "alpha-2.0-0.conda"}
    # the superseded shard is still served for clients holding the older index
    assert svc.conda.shard(repo(svc), "noarch", before["shards"]["alpha"].hex())


def test_same_bytes_are_a_no_op_and_different_bytes_conflict(svc: Services) -> None:
    filename, data = synth.package_bytes("same", "1.0")
    assert put(svc, filename, data)
    assert not put(svc, filename, data)
    _, other = synth.package_bytes("same", "1.0", timestamp=1)
    with pytest.raises(FileExists, match="different contents"):
        put(svc, filename, other)


def test_delete_moves_to_removed_and_the_name_cannot_return(svc: Services) -> None:
    filename, data = synth.package_bytes("gone", "1.0")
    put(svc, filename, data)
    put(svc, *synth.package_bytes("gone", "1.1"))
    manage.delete(svc.ctx, repo(svc), manage.Target("gone", filename=filename), actor="t")
    doc = repodata(svc, "noarch")
    assert filename not in records(doc)
    assert doc["removed"] == [filename]
    assert repodata(svc, "noarch", "repodata_from_packages.json")["removed"] == [filename]
    with pytest.raises(FileExists, match="was deleted"):
        put(svc, filename, data)
    with pytest.raises(InvalidInput, match="no yank"):
        manage.set_yanked(svc.ctx, repo(svc), manage.Target("gone", "1.1"), actor="t", yanked=True)


def test_patches_apply_to_repodata_not_to_repodata_from_packages(svc: Services) -> None:
    put(svc, *synth.package_bytes("app", "1.0", depends=["lib"]))
    put(svc, *synth.package_bytes("bad", "1.0"))
    instructions = {
        "patch_instructions_version": 1,
        "packages.conda": {"app-1.0-0.conda": {"depends": ["lib >=2"]}},
        "remove": ["bad-1.0-0.conda"],
    }
    set_patch_instructions(svc.ctx, repo(svc), ADMIN, "noarch", orjson.dumps(instructions))
    doc = repodata(svc, "noarch")
    assert doc["packages.conda"]["app-1.0-0.conda"]["depends"] == ["lib >=2"]
    assert "bad-1.0-0.conda" not in doc["packages.conda"]
    assert doc["removed"] == ["bad-1.0-0.conda"]
    unpatched = repodata(svc, "noarch", "repodata_from_packages.json")
    assert unpatched["packages.conda"]["app-1.0-0.conda"]["depends"] == ["lib"]
    assert "bad-1.0-0.conda" in unpatched["packages.conda"]
    index = msgpack.unpackb(
        zstandard.decompress(
            svc.conda.page(repo(svc), "noarch", "repodata_shards.msgpack.zst").body
        )
    )
    shard = svc.conda.shard(repo(svc), "noarch", index["shards"]["app"].hex())
    unpacked = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(shard, 1 << 20))
    assert unpacked["packages.conda"]["app-1.0-0.conda"]["depends"] == ["lib >=2"]
    with pytest.raises(InvalidUpload, match="not valid JSON"):
        set_patch_instructions(svc.ctx, repo(svc), ADMIN, "noarch", b"{")


def test_malformed_and_misplaced_packages_store_nothing(svc: Services) -> None:
    bad = DATA / "malformed" / "ca-certificates-2024.7.4-hbcca054_0.conda"
    with pytest.raises(InvalidUpload, match=r"must hold exactly metadata\.json"):
        put_path(svc, bad)
    filename, data = synth.package_bytes("placed", "1.0", subdir="linux-64")
    with pytest.raises(InvalidUpload, match="says subdir 'linux-64'"):
        put(svc, filename, data, subdir="osx-64")
    with pytest.raises(InvalidUpload, match="not valid"):
        put(svc, filename, data, subdir="Linux_64")
    repo_id = repo(svc).id
    with svc.ctx.db.read() as conn:
        assert artifact_store.conda_subdirs(conn, repo_id) == []
    assert list(svc.ctx.blobs.iter_blobs()) == []
    assert list(svc.ctx.tmp_dir.iterdir()) == []


def test_current_repodata_and_run_exports(svc: Services) -> None:
    put(svc, *synth.package_bytes("cur", "1.0"))
    put(svc, *synth.package_bytes("cur", "2.0"))
    current = repodata(svc, "noarch", "current_repodata.json")
    assert set(current["packages.conda"]) == {"cur-2.0-0.conda"}
    exports = repodata(svc, "noarch", "run_exports.json")
    assert set(exports["packages.conda"]) == {"cur-1.0-0.conda", "cur-2.0-0.conda"}


# -- patch instructions are validated field by field --------------------------------------

BAD_PATCHES: list[tuple[dict[str, Any], list[str]]] = [
    ({"packages": {"pk-1.0-0.conda": 5}}, ["must be an object of field changes, not int"]),
    ({"packages.conda": {"pk-1.0-0.conda": {"depends": 5}}}, [".depends must be a list"]),
    ({"packages.conda": {"pk-1.0-0.conda": {"depends": None}}}, [".depends must be a list"]),
    ({"packages.conda": {"pk-1.0-0.conda": {"name": None}}}, [".name cannot be patched"]),
    ({"packages.conda": {"pk-1.0-0.conda": {"version": "9"}}}, [".version cannot be patched"]),
    ({"packages.conda": {"pk-1.0-0.conda": {"constrains": [1]}}}, [".constrains must be"]),
    ({"packages.conda": {"pk-1.0-0.conda": {"track_features": 3}}}, [".track_features must"]),
    ({"packages.conda": {"pk-1.0-0.conda": {"timestamp": "x"}}}, [".timestamp must be"]),
    ({"packages.conda": {"pk-1.0-0.conda": {"build_number": True}}}, [".build_number must"]),
    ({"packages": {"readme.txt": {}}}, ["not a conda package filename"]),
    ({"revoke": "pk-1.0-0.conda"}, ["'revoke' must be a list of filenames"]),
    ({"remove": [5]}, ["remove[0] must be a conda package filename"]),
    ({"patch_instructions_version": 2}, ["only version 1 is supported"]),
    ({"patch_instructions_version": True}, ["only version 1 is supported"]),
    ({"pakages": {}}, ["unknown key 'pakages'"]),
    ([1], ["must hold a JSON object, not list"]),
    (
        {
            "packages": {"pk-1.0-0.conda": 5},
            "packages.conda": {"pk-1.0-0.conda": {"depends": 5, "subdir": "x"}},
        },
        ["not int", ".depends must be", ".subdir cannot be patched"],
    ),
]


@pytest.mark.parametrize(("doc", "messages"), BAD_PATCHES)
def test_bad_patch_instructions_are_refused_with_every_problem(
    svc: Services, doc: Any, messages: list[str]
) -> None:
    put(svc, *synth.package_bytes("pk", "1.0"))
    before = repodata(svc, "noarch")
    with pytest.raises(InvalidUpload) as refused:
        set_patch_instructions(svc.ctx, repo(svc), ADMIN, "noarch", orjson.dumps(doc))
    assert len(refused.value.problems) == len(messages)
    for problem, message in zip(refused.value.problems, messages, strict=True):
        assert message in problem
    assert repodata(svc, "noarch") == before
    assert repodata(svc, "noarch", "patch_instructions.json") == {}


def test_patches_that_conda_allows_are_accepted(svc: Services) -> None:
    put(svc, *synth.package_bytes("pk", "1.0"))
    doc = {
        "patch_instructions_version": 1,
        "packages": {
            "pk-1.0-0.tar.bz2": {"features": None, "track_features": None, "license": "MIT"}
        },
        "packages.conda": {
            "pk-1.0-0.conda": {"depends": ["a >=1"], "constrains": ["b <2"], "timestamp": 5}
        },
        "revoke": [],
        "remove": ["other-1.0-0.tar.bz2"],
    }
    set_patch_instructions(svc.ctx, repo(svc), ADMIN, "noarch", orjson.dumps(doc))
    record = repodata(svc, "noarch")["packages.conda"]["pk-1.0-0.conda"]
    assert record["depends"] == ["a >=1"]
    assert record["track_features"] is None
    assert record["license"] == "MIT"
    set_patch_instructions(svc.ctx, repo(svc), ADMIN, "noarch", b"{}")  # removes them
    assert repodata(svc, "noarch")["packages.conda"]["pk-1.0-0.conda"]["depends"] == []


def test_a_stored_bad_patch_is_skipped_not_a_server_error(
    svc: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """A document stored before validation was complete: its bad entries are logged and
    skipped, its good ones still apply, and every page renders."""
    put(svc, *synth.package_bytes("pk", "1.0"))
    put(svc, *synth.package_bytes("ok", "1.0"))
    stored = {
        "packages": {"pk-1.0-0.conda": 5},
        "packages.conda": {"ok-1.0-0.conda": {"depends": ["fixed"]}},
        "revoke": "not-a-list",
    }
    repo_id = repo(svc).id
    with svc.ctx.db.write() as conn:
        serial = journal_store.append(conn, actor="t", action="conda.patch", repository="ch")
        conda_patch_store.put(conn, repo_id, "noarch", stored, serial)
        repository_store.touch(conn, repo_id, serial)
    with caplog.at_level(logging.WARNING, logger="packhouse.conda"):
        doc = repodata(svc, "noarch")
    assert doc["packages.conda"]["pk-1.0-0.conda"]["name"] == "pk"
    assert doc["packages.conda"]["ok-1.0-0.conda"]["depends"] == ["fixed"]
    assert "must be an object of field changes" in caplog.text
    for kind in ("current_repodata.json", "repodata_shards.msgpack.zst", "repodata.json.zst"):
        assert svc.conda.page(repo(svc), "noarch", kind).body
    channeldata = orjson.loads(svc.conda.channeldata(repo(svc)).body)
    assert set(channeldata["packages"]) == {"ok", "pk"}
    assert repodata(svc, "noarch", "patch_instructions.json") == stored


# -- subdirs that hold nothing keep nothing ------------------------------------------------


def test_empty_subdirs_keep_no_state_and_no_cached_page(svc: Services) -> None:
    put(svc, *synth.package_bytes("held", "1.0"))
    assert records(repodata(svc, "noarch")) != {}
    states = dict(svc.conda._states)
    pages = len(svc.ctx.pages._entries)
    for n in range(300):
        subdir = f"a-{n}"
        for kind in ("repodata.json", "repodata.json.zst", "current_repodata.json"):
            body = svc.conda.page(repo(svc), subdir, kind).body
            assert body
        assert repodata(svc, subdir)["info"] == {"subdir": subdir}
        index = msgpack.unpackb(
            zstandard.decompress(
                svc.conda.page(repo(svc), subdir, "repodata_shards.msgpack.zst").body
            )
        )
        assert index["shards"] == {}
        with pytest.raises(ArtifactNotFound):
            svc.conda.shard(repo(svc), subdir, "0" * 64)
    assert svc.conda._states == states
    assert len(svc.ctx.pages._entries) == pages
    # A subdir that gains a package or a patch gets state like any other.
    put(svc, *synth.package_bytes("later", "1.0", subdir="a-7"))
    assert set(records(repodata(svc, "a-7"))) == {"later-1.0-0.conda"}
    set_patch_instructions(svc.ctx, repo(svc), ADMIN, "a-8", b'{"remove": []}')
    assert repodata(svc, "a-8")["info"] == {"subdir": "a-8"}
    assert {s for _, s in svc.conda._states} == {"noarch", "a-7", "a-8"}
