"""conda itself (26.7.1, both solvers) installs from the real server and from a static channel.

Private channels by a `/t/<token>/` URL, by user:password in the URL and through a `.condarc`
(`channel_alias`, `custom_channels`); `conda search`; a `file://` channel written by
`packhouse conda index`; an upload installable at once (conda revalidates repodata with its
ETag instead of keeping it for a minute).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.builders import synth
from tests.clients.conda_client import SOLVERS, Conda, conda_fixture, installed
from tests.conftest import VENV_BIN, RunningServer

__all__ = ["conda_fixture"]  # the `conda` fixture, used by the tests below

pytestmark = pytest.mark.clients

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "tests" / "data" / "conda" / "conda" / "test-recipes" / "noarch"
NEWEST = {"dependent-2.0-0", "dependency-2.0-0"}


def put(client: httpx.Client, channel: str, path: Path) -> None:
    response = client.put(f"/conda/{channel}/noarch/{path.name}", content=path.read_bytes())
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def hosted(server: RunningServer) -> RunningServer:
    """The private `main` channel holding dependency and dependent, 1.0 and 2.0."""
    with server.client() as client:
        for path in sorted(RECIPES.glob("dependen*.conda")):
            put(client, "main", path)
    return server


def new_token(server: RunningServer) -> str:
    secret = server.run_cli("token", "create", "--user", "admin", "--repo", "conda/main").stdout
    secret = secret.strip()
    assert secret.startswith("ph-")
    return secret


def basic_url(server: RunningServer, channel: str = "main") -> str:
    return f"http://admin:{server.admin_password}@{server.host}/conda/{channel}"


def create(
    conda: Conda, home: Path, channel: str, solver: str, *specs: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    prefix = home / "env"
    result = conda.run(
        "create", "-y", "-p", prefix, "--override-channels", "-c", channel,
        "--solver", solver, *(specs or ("dependent",)),
        home=home,
    )  # fmt: skip
    return prefix, result


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_private_channel_with_a_token_in_the_path(
    conda: Conda, hosted: RunningServer, tmp_path: Path, solver: str
) -> None:
    secret = new_token(hosted)
    prefix, result = create(conda, tmp_path, f"{hosted.url}/t/{secret}/conda/main", solver)
    assert installed(prefix) == NEWEST
    assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("credential", ["password", "token"])
def test_a_private_channel_with_basic_credentials_in_the_url(
    conda: Conda, hosted: RunningServer, tmp_path: Path, solver: str, credential: str
) -> None:
    if credential == "password":
        user, secret = "admin", hosted.admin_password
    else:
        user, secret = "__token__", new_token(hosted)
    channel = f"http://{user}:{secret}@{hosted.host}/conda/main"
    prefix, result = create(conda, tmp_path, channel, solver, "dependent=1")
    assert installed(prefix) == {"dependent-1.0-0", "dependency-1.0-0"}
    assert secret not in result.stdout + result.stderr


def test_a_private_channel_refuses_conda_without_credentials(
    conda: Conda, hosted: RunningServer, tmp_path: Path
) -> None:
    result = conda.run(
        "search", "--override-channels", "-c", f"{hosted.url}/conda/main", "dependent",
        home=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "401" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("solver", "condarc"),
    [
        ("rattler", "channel_alias: {url}/t/{token}/conda\n"),
        ("classic", "custom_channels:\n  main: {basic}\n"),
    ],
    ids=["channel_alias-token", "custom_channels-password"],
)
def test_a_short_channel_name_resolved_through_condarc(
    conda: Conda, hosted: RunningServer, tmp_path: Path, solver: str, condarc: str
) -> None:
    basic = basic_url(hosted).removesuffix("/main")
    settings = condarc.format(url=hosted.url, token=new_token(hosted), basic=basic)
    (tmp_path / ".condarc").write_text(settings)
    shown = conda.json("config", "--show", "channel_alias", "custom_channels", home=tmp_path)
    assert hosted.host in str(shown)  # conda read this HOME's .condarc
    prefix, _ = create(conda, tmp_path, "main", solver)
    assert installed(prefix) == NEWEST


def test_conda_search_lists_every_version_of_a_private_channel(
    conda: Conda, hosted: RunningServer, tmp_path: Path
) -> None:
    secret = new_token(hosted)
    channel = f"{hosted.url}/t/{secret}/conda/main"
    found = conda.json("search", "--override-channels", "-c", channel, "dependen*", home=tmp_path)
    assert secret not in str(found)
    versions = {name: sorted(r["version"] for r in found[name]) for name in found}
    assert versions == {"dependency": ["1.0", "2.0"], "dependent": ["1.0", "2.0"]}
    (record,) = found["dependent"][1:]
    assert record["fn"] == "dependent-2.0-0.conda"
    assert record["depends"] == ["dependency >=2.0,<3.0a0"]
    assert record["channel"].startswith(hosted.url)
    newer = conda.json(
        "search", "--override-channels", "-c", channel, "dependent>=2", home=tmp_path
    )
    assert [r["version"] for r in newer["dependent"]] == ["2.0"]


@pytest.fixture(scope="module")
def static_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A channel directory indexed by `packhouse conda index`, as `conda index` would."""
    channel = tmp_path_factory.mktemp("static") / "channel"
    (channel / "noarch").mkdir(parents=True)
    for path in RECIPES.glob("dependen*.conda"):
        shutil.copy(path, channel / "noarch" / path.name)
    subprocess.run(
        [str(VENV_BIN / "packhouse"), "conda", "index", str(channel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (channel / "noarch" / "repodata.json").is_file()
    return channel


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_file_channel_written_by_packhouse_conda_index(
    conda: Conda, static_channel: Path, tmp_path: Path, solver: str
) -> None:
    prefix, _ = create(conda, tmp_path, static_channel.as_uri(), solver)
    assert installed(prefix) == NEWEST


@pytest.mark.parametrize("solver", SOLVERS)
def test_an_upload_is_installable_and_updatable_at_once(
    conda: Conda, server: RunningServer, tmp_path: Path, solver: str
) -> None:
    """conda keeps the repodata it fetched in its pkgs dir (the same one all along here); it
    must ask again, and see each new version the moment its upload returns."""
    name = f"fresh-{solver}"
    server.run_cli("repo", "create", name, "--format", "conda")
    secret = server.run_cli(
        "token", "create", "--user", "admin", "--repo", f"conda/{name}", "--scope", "upload"
    ).stdout.strip()
    channel = f"{server.url}/t/{secret}/conda/{name}"

    def upload(version: str) -> None:
        path = synth.make_package(tmp_path / "built", "fresh", version)
        response = httpx.put(f"{channel}/noarch/{path.name}", content=path.read_bytes(), timeout=60)
        assert response.status_code == 201, response.text

    home = tmp_path / "home"
    upload("1.0")
    prefix, _ = create(conda, home, channel, solver, "fresh")
    assert installed(prefix) == {"fresh-1.0-0"}
    upload("2.0")
    conda.run(
        "install", "-y", "-p", prefix, "--override-channels", "-c", channel,
        "--solver", solver, "fresh=2", home=home,
    )  # fmt: skip
    assert installed(prefix) == {"fresh-2.0-0"}
    upload("3.0")
    conda.run(
        "update", "-y", "-p", prefix, "--override-channels", "-c", channel,
        "--solver", solver, "fresh", home=home,
    )  # fmt: skip
    assert installed(prefix) == {"fresh-3.0-0"}
    # asking again is cheap: the unchanged linux-64 index was revalidated by its ETag
    revalidated = re.findall(rf'"GET /conda/t/\*\*\*/{name}/linux-64/[^ ]+" 304', server.log_text())
    assert len(revalidated) >= 2, server.log_text()[-3000:]
