"""`packhouse conda index` against conda-index 0.13.0's `conda index`, on the same channels.

Both index copies of one generated channel (synthetic packages with pre-releases, features and
several builds, plus the real zlib packages, which have run_exports) with the same options;
every file both write is compared parsed: JSON documents, their `.zst` / `.bz2`, the shard
indexes and every shard they name, channeldata.json, rss.xml, and the packages index.html
lists. Records are compared without `indexed_timestamp` (CEP 47), which only Packhouse writes.
"""

from __future__ import annotations

import bz2
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import msgpack
import pytest
import zstandard
from tests.builders import synth
from tests.clients.conda_client import Conda, conda_fixture

__all__ = ["conda_fixture"]  # the `conda` fixture, used by the tests below

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "conda" / "conda"
PACKHOUSE = Path(sys.executable).parent / "packhouse"
THEIRS_ONLY = {"cache.db"}  # conda-index's sqlite cache; Packhouse keeps .cache/packhouse/
# Differences on purpose (docs/conda.md): channeldata's `timestamp` is the newest of all the
# name's records (CEP 38) where conda-index keeps the one of the last record it visits; the
# recipe's `source` fields (info/recipe/meta.yaml) are not read into channeldata.
CHANNELDATA_DIFFERENT = ("timestamp", "source_url", "source_git_url")


def make_channel(root: Path) -> Path:
    synth.make_channel(root, 45)
    for subdir in ("linux-64", "osx-64", "win-64"):
        (root / subdir).mkdir(parents=True, exist_ok=True)
        for pkg in (DATA / "conda_format_repo" / subdir).glob("zlib-*"):
            shutil.copy2(pkg, root / subdir)
    for pkg in (DATA / "test-recipes" / "noarch").glob("*.conda"):
        shutil.copy2(pkg, root / "noarch")
    noarch = root / "noarch"
    # pre-releases of the newest version (conda's `name=1.1` keeps `1.1a1` and `1.1.dev1`)
    for version in ("1.0", "1.1", "1.1a1", "1.1.dev1", "1.10.post1", "2.0rc1"):
        synth.make_package(noarch, "pre", version, "0", extension=".conda")
    # several builds of one version, and a twin pair
    for build, number in (("h1_0", 0), ("h2_1", 1), ("h3_2", 2)):
        synth.make_package(noarch, "builds", "3.0", build, extension=".conda")
        del number
    synth.make_package(noarch, "builds", "3.0", "h3_2", extension=".tar.bz2")
    # features: the newest carries them, so the newest feature-less one is kept too
    synth.make_package(noarch, "feat", "1.0", "0", extension=".tar.bz2")
    synth.make_package(
        noarch, "feat", "2.0", "0", extension=".tar.bz2", extra_index={"track_features": "mkl"}
    )
    synth.make_package(noarch, "feat", "2.0", "1", extension=".conda")
    # current_repodata's back-fill: a newest record whose dependency no newest record
    # satisfies brings in the newest version that does (`bf-lib 1.1` exact brings 1.1 and,
    # by conda's `name=1.1` prefix, 1.1.5); one pass only (1.1.5's own `bf-base <1` is not
    # back-filled); virtual, absent and satisfied dependencies bring nothing
    for version, depends in (
        ("0.9", []),
        ("1.0", []),
    ):
        synth.make_package(noarch, "bf-base", version, "0", extension=".conda", depends=depends)
    for version, depends in (
        ("1.0", []),
        ("1.1", []),
        ("1.1.5", ["bf-base <1"]),
        ("2.0", []),
    ):
        synth.make_package(noarch, "bf-lib", version, "0", extension=".conda", depends=depends)
    synth.make_package(
        noarch,
        "bf-app",
        "1.0",
        "0",
        extension=".conda",
        depends=["bf-lib >=1.0,<2.0a0", "__glibc >=2.17", "bf-absent >=1", "bf-base >=1"],
    )
    synth.make_package(noarch, "bf-app2", "3.0", "0", extension=".tar.bz2", depends=["bf-lib 1.1"])
    return root


def patches_package(directory: Path) -> Path:
    """A repodata-patches .tar.bz2 with <subdir>/patch_instructions.json, as conda-forge's."""
    noarch = {
        "patch_instructions_version": 1,
        "packages": {"synth-0-1.0.0-h0_0.conda": {"depends": ["patched-in >=1"]}},
        "packages.conda": {"pre-1.0-0.conda": {"license": "Patched"}},
        "revoke": ["feat-1.0-0.tar.bz2"],
        "remove": ["synth-0-1.3.3-h0_0.tar.bz2", "dependency-1.0-0.conda"],
    }
    linux = {"patch_instructions_version": 1, "remove": ["zlib-1.2.11-h7b6447c_3.tar.bz2"]}
    files = {
        "noarch/patch_instructions.json": json.dumps(noarch).encode(),
        "linux-64/patch_instructions.json": json.dumps(linux).encode(),
    }
    path = synth.make_package(
        directory, "test-repodata-patches", "1.0", "0", extension=".tar.bz2", files=files
    )
    assert isinstance(path, Path)
    return path


# --- reading both trees -------------------------------------------------------------------


def _records_without_stamp(document: Any) -> Any:
    if isinstance(document, dict):
        for section in ("packages", "packages.conda"):
            records = document.get(section)
            if isinstance(records, dict):
                for record in records.values():
                    if isinstance(record, dict):
                        stamp = record.pop("indexed_timestamp", None)
                        assert stamp is None or (isinstance(stamp, int) and stamp > 10**12)
    return document


def _json_document(path: Path) -> Any:
    data = path.read_bytes()
    if path.name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 30)
    elif path.name.endswith(".bz2"):
        data = bz2.decompress(data)
    return _records_without_stamp(json.loads(data))


def _msgpack(path: Path) -> Any:
    return msgpack.unpackb(zstandard.decompress(path.read_bytes()), raw=False)


def _shards(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(info, {name: shard document}) of a shard index and the shards it names."""
    index = _msgpack(path)
    assert index["version"] == 1
    shards = {
        name: _records_without_stamp(_msgpack(path.parent / f"{digest.hex()}.msgpack.zst"))
        for name, digest in index["shards"].items()
    }
    return index["info"], shards


def _channeldata(path: Path) -> Any:
    """channeldata.json less the fields that differ on purpose, which are checked instead."""
    document = json.loads(path.read_text())
    for name, package in document.get("packages", {}).items():
        for key in CHANNELDATA_DIFFERENT:
            value = package.pop(key, None)
            if key == "timestamp":
                assert isinstance(value, int), (name, value)
    return document


def _rss(path: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    channel = ElementTree.parse(path).getroot().find("channel")  # noqa: S314  # our own files
    assert channel is not None
    head = {
        e.tag: e.text or "" for e in channel if e.tag not in ("item", "pubDate", "lastBuildDate")
    }
    # pubDate is channeldata's timestamp, which differs on purpose (see CHANNELDATA_DIFFERENT)
    items = [
        {e.tag: e.text or "" for e in item if e.tag not in ("pubDate", "guid")}
        for item in channel.findall("item")
    ]
    return head, sorted(items, key=lambda i: json.dumps(i, sort_keys=True))


_PACKAGE_LINK = re.compile(r'href="([^"]+\.(?:conda|tar\.bz2))"')
_SHA256 = re.compile(r"\b[0-9a-f]{64}\b")


def _html(path: Path, packages: set[str]) -> tuple[list[str], list[str]]:
    """The package files an index.html links, and which of their sha256 it shows."""
    text = path.read_text()
    return sorted(set(_PACKAGE_LINK.findall(text))), sorted(set(_SHA256.findall(text)) & packages)


def _package_sha256(folder: Path) -> set[str]:
    found: set[str] = set()
    for name in ("repodata.json", "repodata_from_packages.json"):
        if (folder / name).is_file():
            document = json.loads((folder / name).read_text())
            for section in ("packages", "packages.conda"):
                found.update(r["sha256"] for r in document.get(section, {}).values())
    return found


def _is_conda_index_sharding_quirk(path: Path) -> bool:
    """conda-index 0.13 with --write-shards and no patch package writes
    patch_instructions.json as `{name: {}}` for every shard name: no instructions at all."""
    document = json.loads(path.read_text())
    return isinstance(document, dict) and all(v == {} for v in document.values())


def _files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file()
        and not p.name.endswith((".conda", ".tar.bz2"))
        and not re.fullmatch(r"[0-9a-f]{64}\.msgpack\.zst", p.name)
        and ".cache/packhouse" not in str(p)
    }


def compare(theirs: Path, ours: Path) -> Iterator[str]:
    """Every difference between two indexed trees, as sentences."""
    their_files, our_files = _files(theirs), _files(ours)
    for missing in sorted(f for f in their_files - our_files if Path(f).name not in THEIRS_ONLY):
        if Path(missing).name == "patch_instructions.json" and _is_conda_index_sharding_quirk(
            theirs / missing
        ):
            continue
        yield f"{missing}: written by conda-index only"
    for name in sorted(their_files & our_files):
        a, b = theirs / name, ours / name
        if name.endswith(".msgpack.zst"):
            (info_a, shards_a), (info_b, shards_b) = _shards(a), _shards(b)
            for key in ("created_at",):
                for info in (info_a, info_b):
                    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info.pop(key, "")):
                        yield f"{name}: info.{key} missing or not ISO 8601 UTC"
            if info_a != info_b:
                yield f"{name}: info {info_a} != {info_b}"
            if set(shards_a) != set(shards_b):
                yield f"{name}: shard names {sorted(set(shards_a) ^ set(shards_b))} differ"
            for shard in sorted(set(shards_a) & set(shards_b)):
                if shards_a[shard] != shards_b[shard]:
                    yield f"{name}: shard {shard!r}: {shards_a[shard]} != {shards_b[shard]}"
        elif name == "channeldata.json":
            if _channeldata(a) != _channeldata(b):
                yield f"{name}: {_channeldata(a)} != {_channeldata(b)}"
        elif ".json" in name:
            if _json_document(a) != _json_document(b):
                yield f"{name}: {_json_document(a)} != {_json_document(b)}"
        elif name.endswith("rss.xml"):
            if _rss(a) != _rss(b):
                yield f"{name}: {_rss(a)} != {_rss(b)}"
        elif name.endswith("index.html"):
            digests = _package_sha256(a.parent)
            if _html(a, digests) != _html(b, digests):
                yield f"{name}: packages listed differ: {_html(a, digests)} != {_html(b, digests)}"
        else:
            yield f"{name}: not compared (unknown kind of file)"


def assert_same(theirs: Path, ours: Path) -> None:
    differences = list(compare(theirs, ours))
    assert not differences, "\n".join(d[:2000] for d in differences)


# --- the runs -----------------------------------------------------------------------------


def run_conda_index(conda: Conda, channel: Path, *args: str) -> None:
    result = subprocess.run(
        [str(conda.python), "-m", "conda_index", *args, str(channel)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, f"conda index failed:\n{result.stdout}\n{result.stderr}"


def run_packhouse(channel: Path, *args: str) -> str:
    result = subprocess.run(
        [str(PACKHOUSE), "conda", "index", *args, str(channel)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, (
        f"packhouse conda index failed:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def both(conda: Conda, tmp_path: Path, *args: str) -> tuple[Path, Path]:
    template = make_channel(tmp_path / "template")
    theirs, ours = tmp_path / "conda-index" / "chan", tmp_path / "packhouse" / "chan"
    shutil.copytree(template, theirs)
    shutil.copytree(template, ours)
    run_conda_index(conda, theirs, *args)
    run_packhouse(ours, *args)
    return theirs, ours


ALL = ("--zst", "--bz2", "--write-shards", "--channeldata", "--run-exports", "--current-repodata")


def test_same_files_as_conda_index(conda: Conda, tmp_path: Path) -> None:
    theirs, ours = both(conda, tmp_path, *ALL, "--threads", "2")
    assert_same(theirs, ours)
    # the shard records carry run_exports, as conda-index writes them
    _, shards = _shards(ours / "linux-64" / "repodata_shards.msgpack.zst")
    zlib = shards["zlib"]["packages.conda"]["zlib-1.2.11-h7b6447c_3.conda"]
    assert zlib["run_exports"] == {"weak": ["zlib >=1.2.11,<1.3.0a0"]}
    # and the same files again after a re-run of each, with nothing changed
    run_conda_index(conda, theirs, *ALL)
    assert "0 files written" in run_packhouse(ours, *ALL)
    assert_same(theirs, ours)


def test_same_files_with_a_patches_package(conda: Conda, tmp_path: Path) -> None:
    patches = patches_package(tmp_path / "patches")
    theirs, ours = both(conda, tmp_path, *ALL, "--patch-generator", str(patches))
    assert_same(theirs, ours)
    repodata = json.loads((ours / "noarch" / "repodata.json").read_text())
    assert "dependency-1.0-0.conda" in repodata["removed"]
    assert repodata["packages"]["feat-1.0-0.tar.bz2"]["revoked"] is True


def test_same_files_with_base_url_pretty_json_and_one_subdir(conda: Conda, tmp_path: Path) -> None:
    args = ("--zst", "--write-shards", "--no-compact", "--base-url", "https://example.invalid/c")
    theirs, ours = both(conda, tmp_path, *args, "--subdir", "noarch", "--subdir", "linux-64")
    assert_same(theirs, ours)
    assert not (ours / "osx-64" / "repodata.json").exists()
    text = (ours / "noarch" / "repodata.json").read_text()
    assert text.startswith('{\n  "info": {\n    "base_url": "https://example.invalid/c/noarch/"')


def test_conflicting_options_refused_as_conda_index_refuses_them(tmp_path: Path) -> None:
    make_channel(tmp_path / "chan")
    result = subprocess.run(
        [str(PACKHOUSE), "conda", "index", "--no-write-monolithic", str(tmp_path / "chan")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "--channeldata need repodata.json" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--upstream-stage", "clone"), "--upstream-stage 'clone'"),
        (("--db", "postgresql"), "--db 'postgresql'"),
        (("--subdir", "Linux_64"), "subdir 'Linux_64' is not valid"),
        (("--patch-generator", "/nonexistent/gen.py"), "is not a file"),
        (("--threads", "0"), "--threads must be at least 1"),
        (("-m", "/nonexistent/versions.yaml"), "--current-index-versions-file"),
    ],
)
def test_bad_options_are_clear_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "chan" / "noarch").mkdir(parents=True)
    result = subprocess.run(
        [str(PACKHOUSE), "conda", "index", *args, str(tmp_path / "chan")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
