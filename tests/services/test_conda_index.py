"""`packhouse conda index`: records, incrementality, patches, and rattler installing from it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import msgpack
import pytest
import zstandard
from tests.builders import synth
from tests.clients.conda_client import RATTLER_RUN
from typer.testing import CliRunner

from packhouse.cli.conda import app

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "conda"


def _index(channel: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["index", str(channel), "--jobs", "2", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    root = tmp_path / "channel"
    for subdir in ("linux-64", "osx-64", "win-64"):
        (root / subdir).mkdir(parents=True)
        for pkg in (DATA / "conda" / "conda_format_repo" / subdir).glob("zlib-*"):
            shutil.copy2(pkg, root / subdir)
    (root / "noarch").mkdir()
    for pkg in (DATA / "conda" / "test-recipes" / "noarch").glob("*.conda"):
        shutil.copy2(pkg, root / "noarch")
    return root


def _records(path: Path) -> dict[str, dict[str, object]]:
    doc = json.loads(path.read_text())
    return {**doc["packages"], **doc["packages.conda"]}


def test_index_writes_conda_index_records(channel: Path) -> None:
    _index(channel, "--bz2", "--current-repodata", "--run-exports")
    for subdir in ("linux-64", "osx-64", "win-64"):
        expected = _records(DATA / "conda" / "conda_format_repo" / subdir / "repodata.json")
        got = _records(channel / subdir / "repodata.json")
        assert set(got) == {p.name for p in (channel / subdir).glob("zlib-*")}
        for filename, record in got.items():
            stamp = record.pop("indexed_timestamp")  # CEP 47, which conda-index does not write
            assert isinstance(stamp, int)
            assert stamp > 1_700_000_000_000
            assert record == expected[filename]
        for name in (
            "repodata.json.zst",
            "repodata.json.bz2",
            "repodata_from_packages.json",
            "current_repodata.json",
            "run_exports.json",
            "index.html",
            "repodata_shards.msgpack.zst",
        ):
            assert (channel / subdir / name).is_file(), name
    expected = _records(DATA / "conda" / "test-recipes" / "noarch" / "repodata.json")
    for filename, record in _records(channel / "noarch" / "repodata.json").items():
        record.pop("indexed_timestamp")
        assert record == expected[filename]
    zst = (channel / "noarch" / "repodata.json.zst").read_bytes()
    assert zstandard.decompress(zst) == (channel / "noarch" / "repodata.json").read_bytes()
    channeldata = json.loads((channel / "channeldata.json").read_text())
    assert channeldata["packages"]["zlib"]["subdirs"] == ["linux-64", "osx-64", "win-64"]
    assert channeldata["packages"]["dependent"]["version"] == "2.0"


def test_shards_hold_every_record(channel: Path) -> None:
    _index(channel)
    subdir = channel / "noarch"
    index = msgpack.unpackb(
        zstandard.decompress((subdir / "repodata_shards.msgpack.zst").read_bytes())
    )
    assert index["info"]["subdir"] == "noarch"
    records = _records(subdir / "repodata.json")
    assert set(index["shards"]) == {r["name"] for r in records.values()}
    shard_bytes = (subdir / f"{index['shards']['dependent'].hex()}.msgpack.zst").read_bytes()
    shard = msgpack.unpackb(
        zstandard.ZstdDecompressor().decompress(shard_bytes, max_output_size=1 << 20)
    )
    for filename, record in shard["packages.conda"].items():
        assert record["sha256"] == bytes.fromhex(str(records[filename]["sha256"]))


def test_noarch_is_created_even_when_empty(tmp_path: Path) -> None:
    _index(tmp_path)
    doc = json.loads((tmp_path / "noarch" / "repodata.json").read_text())
    assert doc == {
        "info": {"subdir": "noarch"},
        "packages": {},
        "packages.conda": {},
        "removed": [],
        "repodata_version": 1,
    }


def test_rerun_is_incremental_and_leaves_files_alone(channel: Path) -> None:
    _index(channel)
    repodata = channel / "noarch" / "repodata.json"
    before = repodata.stat().st_mtime_ns
    assert "0 read, 0 removed" in _index(channel)
    assert repodata.stat().st_mtime_ns == before
    synth.make_package(channel / "noarch", "added", "1.0", "0")
    assert "1 read, 0 removed" in _index(channel)
    assert "added-1.0-0.conda" in _records(repodata)
    (channel / "noarch" / "added-1.0-0.conda").unlink()
    assert "0 read, 1 removed" in _index(channel)
    assert "added-1.0-0.conda" not in _records(repodata)


def test_a_quiet_rerun_writes_nothing_but_repairs_what_was_touched(channel: Path) -> None:
    _index(channel, "--bz2")
    assert "0 files written" in _index(channel, "--bz2")
    # an output deleted or edited by hand is written again; so is all after an option change
    (channel / "noarch" / "repodata.json.bz2").unlink()
    (channel / "linux-64" / "repodata.json").write_text("{}")
    output = _index(channel, "--bz2")
    assert "0 read" in output
    assert "0 files written" not in output
    assert (channel / "noarch" / "repodata.json.bz2").is_file()
    assert "zlib-1.2.11-h7b6447c_3.conda" in _records(channel / "linux-64" / "repodata.json")
    assert "0 files written" in _index(channel, "--bz2")
    _index(channel, "--no-bz2")
    assert not (channel / "noarch" / "repodata.json.bz2").exists()
    # a damaged cache is a cold run, not an error
    for cache in (channel / ".cache" / "packhouse").iterdir():
        cache.write_bytes(b"\xc1 not msgpack")
    before = _records(channel / "linux-64" / "repodata.json")
    assert "0 skipped" in _index(channel)
    assert _records(channel / "linux-64" / "repodata.json") == before


def test_bad_package_is_reported_and_skipped(channel: Path) -> None:
    shutil.copy2(
        DATA / "malformed" / "ca-certificates-2024.7.4-hbcca054_0.conda", channel / "linux-64"
    )
    output = _index(channel)
    assert "1 skipped" in output
    assert "ca-certificates" not in (channel / "linux-64" / "repodata.json").read_text()
    assert "1 skipped" in _index(channel)  # still reported, from the cache


def test_patch_package_and_hotfix_revoke(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    shutil.copytree(DATA / "conda-index" / "index_hotfix_pkgs", channel)
    instructions = {
        "patch_instructions_version": 1,
        "packages": {"hotfix_depends_test-1.0-dummy_0.tar.bz2": {"depends": ["zlib >=1.2"]}},
        "revoke": ["revoke_test-1.0-0.tar.bz2"],
        "remove": [],
    }
    patch = tmp_path / "patch_instructions.json"
    patch.write_text(json.dumps(instructions))
    _index(channel, "--patch", str(patch))
    doc = json.loads((channel / "osx-64" / "repodata.json").read_text())
    for section, ext in (("packages", ".tar.bz2"), ("packages.conda", ".conda")):
        assert doc[section][f"hotfix_depends_test-1.0-dummy_0{ext}"]["depends"] == ["zlib >=1.2"]
        revoked = doc[section][f"revoke_test-1.0-0{ext}"]
        assert revoked["revoked"] is True
        assert revoked["depends"] == ["zlib", "package_has_been_revoked"]
    unpatched = json.loads((channel / "osx-64" / "repodata_from_packages.json").read_text())
    assert unpatched["packages"]["revoke_test-1.0-0.tar.bz2"]["depends"] == ["zlib"]


def test_patch_from_repodata_patches_package(tmp_path: Path) -> None:
    _index(
        tmp_path,
        "--patch",
        str(DATA / "conda-index" / "archives" / "conda-forge-repodata-patches-20180828-0.tar.bz2"),
    )
    assert (tmp_path / "noarch" / "patch_instructions.json").is_file()


_RATTLER = (
    """
from pathlib import Path
from rattler import Channel, install, solve

async def main(channel_url, prefix):
    specs = ["dependent", "prefixed"]
    records = await solve([Channel(channel_url)], specs, platforms=["noarch", "linux-64"])
    await install(records, target_prefix=prefix)
    print(sorted(f"{r.name.normalized}={r.version}" for r in records))
"""
    + RATTLER_RUN
)


@pytest.mark.clients
def test_rattler_solves_and_installs_from_indexed_channel(channel: Path, tmp_path: Path) -> None:
    synth.make_package(
        channel / "noarch",
        "prefixed",
        "1.0",
        "0",
        files={"share/prefixed/config.txt": f"prefix={synth.PLACEHOLDER}\n".encode()},
        prefix_paths=["share/prefixed/config.txt"],
    )
    _index(channel)
    prefix = tmp_path / "env"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_RATTLER), channel.as_uri(), str(prefix)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert "dependency=2.0" in result.stdout, result.stdout + result.stderr
    assert "dependent=2.0" in result.stdout
    meta = {p.name for p in (prefix / "conda-meta").glob("*.json")}
    assert {"dependent-2.0-0.json", "dependency-2.0-0.json", "prefixed-1.0-0.json"} <= meta
    config = (prefix / "share" / "prefixed" / "config.txt").read_text()
    assert config == f"prefix={prefix}\n"
