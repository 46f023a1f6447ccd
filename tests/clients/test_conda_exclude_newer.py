"""Cooldowns against Packhouse: conda's `--exclude-newer` and py-rattler's `exclude_newer`
honour CEP 47 `indexed_timestamp`, which the server stamps at upload and `packhouse conda
index` stamps when it first indexes a package.

Both versions of the package are built in 2023 (their build `timestamp`), so only the
`indexed_timestamp` can tell them apart: 1.0 enters the channel before the cut-off, 2.0 after.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgpack
import pytest
import zstandard

from tests.builders import synth
from tests.clients.conda_client import RATTLER_RUN, SOLVERS, Conda, conda_fixture, installed
from tests.conftest import VENV_BIN, RunningServer

__all__ = ["conda_fixture"]  # the `conda` fixture, used by the tests below

pytestmark = pytest.mark.clients

BUILT = 1_700_000_000_000  # 2023-11-14, the build `timestamp` of both versions


def _cutoff_between(before: object, after: object) -> tuple[datetime, str]:
    """Run `before`, wait, take a cut-off (whole seconds, as conda reads it), wait, `after`."""
    assert callable(before)
    assert callable(after)
    before()
    time.sleep(1.5)
    cutoff = datetime.fromtimestamp(int(time.time()), tz=UTC)
    time.sleep(1.5)
    after()
    return cutoff, cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def public_channel(
    server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, datetime, str]:
    folder = tmp_path_factory.mktemp("cooldown-pkgs")
    server.run_cli("repo", "create", "cool", "--format", "conda", "--public")

    def upload(version: str) -> None:
        path = synth.make_package(folder, "cool", version, "0", timestamp=BUILT)
        with server.client() as client:
            response = client.put(f"/conda/cool/noarch/{path.name}", content=path.read_bytes())
            assert response.status_code == 201, response.text

    cutoff, text = _cutoff_between(lambda: upload("1.0"), lambda: upload("2.0"))
    return f"{server.url}/conda/cool", cutoff, text


@pytest.fixture(scope="module")
def static_channel(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, datetime, str]:
    channel = tmp_path_factory.mktemp("cooldown-static") / "channel"

    def add_and_index(version: str) -> None:
        synth.make_package(channel / "noarch", "cool", version, "0", timestamp=BUILT)
        subprocess.run(
            [str(VENV_BIN / "packhouse"), "conda", "index", str(channel)],
            check=True,
            capture_output=True,
            timeout=120,
        )

    cutoff, text = _cutoff_between(lambda: add_and_index("1.0"), lambda: add_and_index("2.0"))
    return channel.as_uri(), cutoff, text


def test_served_records_and_shards_carry_the_upload_time(
    public_channel: tuple[str, datetime, str],
) -> None:
    url, cutoff, _ = public_channel
    millis = cutoff.timestamp() * 1000
    repodata = httpx.get(f"{url}/noarch/repodata.json").json()
    stamps = {fn: r["indexed_timestamp"] for fn, r in repodata["packages.conda"].items()}
    assert stamps["cool-1.0-0.conda"] < millis < stamps["cool-2.0-0.conda"]
    assert all(r["timestamp"] == BUILT for r in repodata["packages.conda"].values())
    index = msgpack.unpackb(
        zstandard.decompress(httpx.get(f"{url}/noarch/repodata_shards.msgpack.zst").content)
    )
    digest = index["shards"]["cool"]
    base = httpx.URL(f"{url}/noarch/repodata_shards.msgpack.zst").join(
        index["info"]["shards_base_url"]
    )
    shard = msgpack.unpackb(
        zstandard.decompress(httpx.get(f"{base}{digest.hex()}.msgpack.zst").content)
    )
    assert {fn: r["indexed_timestamp"] for fn, r in shard["packages.conda"].items()} == stamps


def test_a_re_index_does_not_move_the_stamp(static_channel: tuple[str, datetime, str]) -> None:
    uri, _, _ = static_channel
    channel = Path(uri.removeprefix("file://"))
    before = (channel / "noarch" / "repodata.json").read_bytes()
    os.utime(channel / "noarch" / "cool-1.0-0.conda")  # touched: read again, same bytes
    subprocess.run(
        [str(VENV_BIN / "packhouse"), "conda", "index", str(channel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (channel / "noarch" / "repodata.json").read_bytes() == before


@pytest.mark.parametrize("where", ["server", "static"])
def test_conda_exclude_newer(
    conda: Conda,
    public_channel: tuple[str, datetime, str],
    static_channel: tuple[str, datetime, str],
    tmp_path: Path,
    where: str,
) -> None:
    """conda's classic solver; conda-rattler-solver 0.2 refuses `--exclude-newer` ("does not
    support --exclude-newer global cutoff"), whichever channel it reads."""
    solver = "classic"
    assert solver in SOLVERS
    channel, _, cutoff = public_channel if where == "server" else static_channel
    for exclude, expected in (([], "cool-2.0-0"), (["--exclude-newer", cutoff], "cool-1.0-0")):
        home = tmp_path / f"home-{len(exclude)}"
        prefix = home / "env"
        conda.run(
            "create", "-y", "-p", prefix, "--override-channels", "-c", channel,
            "--solver", solver, *exclude, "cool",
            home=home,
        )  # fmt: skip
        assert installed(prefix) == {expected}


_RATTLER = (
    """
import datetime
from rattler import Channel, solve

async def main(channel_url, cutoff):
    kwargs = {}
    if cutoff:
        kwargs = {
            "exclude_newer": datetime.datetime.fromisoformat(cutoff),
            "timestamp_policy": "require-indexed-timestamp",
        }
    records = await solve([Channel(channel_url)], ["cool"], platforms=["noarch"], **kwargs)
    print(sorted(f"{r.name.normalized}={r.version}" for r in records))
"""
    + RATTLER_RUN
)


@pytest.mark.parametrize("where", ["server", "static"])
def test_rattler_exclude_newer_uses_indexed_timestamp(
    public_channel: tuple[str, datetime, str],
    static_channel: tuple[str, datetime, str],
    tmp_path: Path,
    where: str,
) -> None:
    """`require-indexed-timestamp`: rattler rejects records without one, so solving at all
    shows every record carries it."""
    channel, cutoff, _ = public_channel if where == "server" else static_channel
    for argument, expected in (("", "['cool=2.0']"), (cutoff.isoformat(), "['cool=1.0']")):
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_RATTLER), channel, argument],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
            env={**os.environ, "RATTLER_CACHE_DIR": str(tmp_path / f"cache-{where}-{argument}")},
        )
        assert expected in result.stdout, result.stdout + result.stderr
