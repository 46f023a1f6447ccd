"""Static trees: `packhouse export --static` of a server, and `packhouse pypi index` of a
directory of wheels, read by pip and uv over file://, conda over file:// and py-rattler (with
CEP 16 shards) from a plain web server (Python's http.server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import make_sdist, make_wheel
from tests.clients.conda_client import RATTLER_RUN, Conda, conda_fixture, installed
from tests.clients.populated import populate
from tests.clients.test_pypi_clients import installed_version, run
from tests.conftest import VENV_BIN, make_venv, start_server, stop_server
from tests.upstream_server import directory_server

__all__ = ["conda_fixture"]

pytestmark = pytest.mark.clients


def packhouse(*args: str | Path) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PACKHOUSE_")}
    result = subprocess.run(
        [str(VENV_BIN / "packhouse"), *map(str, args)],
        capture_output=True, text=True, env=environ, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The static tree of a server holding a bit of everything (stopped before the export)."""
    root = tmp_path_factory.mktemp("static")
    server = start_server(root / "data")
    try:
        populate(server, root / "dist")
    finally:
        stop_server(server)
    out = packhouse("export", "--static", root / "tree", "--data", root / "data")
    assert "skipped pypi/all (reads through a proxy)" in out
    return root / "tree"


@pytest.fixture(scope="module")
def web(tree: Path) -> Iterator[tuple[str, Path]]:
    """A plain web server over the tree, and its request log."""
    log = tree.parent / "http.log"
    with directory_server(tree, log) as url:
        yield url, log


def test_the_tree_holds_the_servers_pages_and_files(tree: Path) -> None:
    simple = tree / "pypi" / "main" / "simple"
    projects = json.loads((simple / "index.json").read_text())["projects"]
    assert [p["name"] for p in projects] == ["ph-move-app", "ph-move-base"]
    page = json.loads((simple / "ph-move-base" / "index.json").read_text())
    yanked = {f["filename"]: f["yanked"] for f in page["files"]}
    assert yanked["ph_move_base-1.1-py3-none-any.whl"] == "broken"
    wheel = next(f for f in page["files"] if f["filename"].endswith("1.0-py3-none-any.whl"))
    path = simple / "ph-move-base" / wheel["url"]
    with zipfile.ZipFile(path) as zf:
        metadata = zf.read("ph_move_base-1.0.dist-info/METADATA")
    assert path.with_name(path.name + ".metadata").read_bytes() == metadata  # PEP 658
    assert not (tree / "pypi" / "main" / "simple" / "ph-move-gone").exists()  # deleted
    noarch = tree / "conda" / "main" / "noarch"
    repodata = json.loads((noarch / "repodata.json").read_text())
    assert repodata["packages.conda"]["dependent-1.0-0.conda"]["depends"] == ["dependency >=1"]
    assert (noarch / "repodata.json.zst").is_file()
    assert list((noarch / "shards").glob("*.msgpack.zst"))
    assert json.loads((tree / "conda" / "main" / "channeldata.json").read_text())["packages"]


def test_pip_and_uv_install_from_the_tree_over_file_urls(tree: Path, tmp_path: Path) -> None:
    index = (tree / "pypi" / "main" / "simple").as_uri() + "/"
    python = make_venv(tmp_path / "pip")
    run(python, "-m", "pip", "install", "--index-url", index, "ph-move-app")
    assert installed_version(python, "ph_move_base") == "1.0"  # 1.1 is yanked
    uv_python = make_venv(tmp_path / "uv")
    run(VENV_BIN / "uv", "pip", "install", "--python", uv_python, "--index-url", index,
        "ph-move-app", "ph-move-base==1.1")  # fmt: skip
    assert installed_version(uv_python, "ph_move_base") == "1.1"  # pinned: a yank allows it
    team = (tree / "pypi" / "team" / "simple").as_uri() + "/"
    run(python, "-m", "pip", "install", "--index-url", team, "ph-move-team")
    assert installed_version(python, "ph_move_team") == "2.0"


def test_conda_installs_from_the_tree_over_a_file_url(
    tree: Path, conda: Conda, tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    conda.run(
        "create", "-y", "-p", prefix, "--override-channels",
        "-c", (tree / "conda" / "main").as_uri(), "--solver", "classic", "dependent",
        home=tmp_path,
    )  # fmt: skip
    assert installed(prefix) == {"dependent-2.0-0", "dependency-2.0-0"}


_RATTLER = (
    """
from rattler import Channel, Gateway, install, solve

async def main(channel_url, prefix):
    records = await solve([Channel(channel_url)], ["dependent==1.0"], platforms=["noarch"],
                          gateway=Gateway())
    await install(records, target_prefix=prefix, show_progress=False)
    print(sorted(f"{r.name.normalized}={r.version}" for r in records))
"""
    + RATTLER_RUN
)


def test_py_rattler_installs_from_the_tree_on_a_plain_web_server(
    web: tuple[str, Path], tmp_path: Path
) -> None:
    url, log = web
    script = textwrap.dedent(_RATTLER)
    result = subprocess.run(
        [sys.executable, "-c", script, f"{url}/conda/main", str(tmp_path / "env")],
        capture_output=True, text=True, timeout=240, check=False,
        env={**os.environ, "RATTLER_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert "'dependent=1.0'" in result.stdout, result.stdout + result.stderr
    assert "'dependency=2.0'" in result.stdout  # the patched dependency, as the server serves
    requests = log.read_text()
    assert "GET /conda/main/noarch/repodata_shards.msgpack.zst" in requests
    assert "GET /conda/main/noarch/shards/" in requests


def test_pypi_index_of_a_directory_is_installable_and_incremental(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "ph-dir-base", "1.0")
    make_sdist(wheels, "ph-dir-base", "1.0")
    make_wheel(wheels, "ph-dir-app", "1.0", requires=["ph-dir-base"])
    (wheels / "notes.txt").write_text("not a distribution")
    (wheels / "ph_dir_bad-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    first = packhouse("pypi", "index", wheels)
    assert "indexed 3 files of 2 projects: 3 read, 1 skipped" in first
    assert (wheels / "ph_dir_base-1.0-py3-none-any.whl.metadata").is_file()
    index = (wheels / "simple").as_uri() + "/"
    python = make_venv(tmp_path / "venv")
    pip = run(python, "-m", "pip", "install", "-v", "--index-url", index, "ph-dir-app").stdout
    assert installed_version(python, "ph_dir_base") == "1.0"
    metadata_url = (wheels / "ph_dir_base-1.0-py3-none-any.whl.metadata").as_uri()
    assert f"Obtaining dependency information for ph-dir-base from {metadata_url}" in pip

    quiet = packhouse("pypi", "index", wheels)
    assert "0 read, 1 skipped, 0 pages written, 0 removed" in quiet

    make_wheel(wheels, "ph-dir-base", "2.0")
    (wheels / "ph_dir_app-1.0-py3-none-any.whl").unlink()
    again = packhouse("pypi", "index", wheels)
    assert "indexed 3 files of 1 projects: 1 read" in again
    assert not (wheels / "simple" / "ph-dir-app").exists()
    assert not (wheels / "ph_dir_app-1.0-py3-none-any.whl.metadata").exists()
    uv_python = make_venv(tmp_path / "uv")
    run(VENV_BIN / "uv", "pip", "install", "--python", uv_python, "--index-url", index,
        "ph-dir-base")  # fmt: skip
    assert installed_version(uv_python, "ph_dir_base") == "2.0"
