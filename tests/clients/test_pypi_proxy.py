"""One URL for private and public packages: a PyPI group of a hosted repository and a proxy
of a second, real Packhouse process, driven with real pip and uv."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import (
    CLIENT_ENV,
    SIMPLE_JSON,
    VENV_BIN,
    RunningServer,
    file_path,
    make_venv,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.clients

LOOPBACK_ONLY = {"PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS": '["127.0.0.1/32"]'}


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env={**os.environ, **CLIENT_ENV},
        timeout=300,
    )
    if result.returncode != 0:
        raise AssertionError(f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result


def twine(server: RunningServer, repo: str, *files: Path) -> None:
    run(
        VENV_BIN / "twine", "upload", "--non-interactive", "--disable-progress-bar",
        "--repository-url", f"{server.url}/pypi/{repo}/",
        "-u", "admin", "-p", server.admin_password, *files,
    )  # fmt: skip


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    here = tmp_path_factory.mktemp("wheels")
    make_wheel(here, "acme-core", "1.0.0")
    make_wheel(here, "acme-core", "1.1.0", requires=["six>=1.16"])
    (here / "squat").mkdir()
    make_wheel(here / "squat", "acme-core", "99.0.0")
    return here


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Iterator[RunningServer]:
    """The public index: six and iniconfig, and a squatted acme-core 99.0.0."""
    running = start_server(tmp_path_factory.mktemp("upstream") / "data")
    running.run_cli("repo", "create", "public", "--public")
    data = Path(__file__).parents[1] / "data" / "pypi"
    twine(
        running,
        "public",
        data / "six-1.16.0-py2.py3-none-any.whl",
        data / "six-1.16.0.tar.gz",
        data / "iniconfig-2.3.1-py3-none-any.whl",
        wheels / "squat" / "acme_core-99.0.0-py3-none-any.whl",
    )
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def company(
    tmp_path_factory: pytest.TempPathFactory, upstream: RunningServer, wheels: Path
) -> Iterator[RunningServer]:
    """Packhouse with `main` (acme-core 1.0.0, 1.1.0), a proxy of the public index and the
    group `all` = main + proxy."""
    running = start_server(tmp_path_factory.mktemp("company") / "data", LOOPBACK_ONLY)
    running.run_cli(
        "repo", "create", "pypi-public", "--upstream", f"{upstream.url}/pypi/public/simple/"
    )
    running.run_cli("repo", "create", "all", "--bases", "main,pypi-public")
    twine(running, "main", *sorted(wheels.glob("acme_core-1.*.whl")))
    yield running
    stop_server(running)


def versions(client: httpx.Client, project: str, repo: str = "all") -> list[str]:
    response = client.get(f"/pypi/{repo}/simple/{project}/", headers=SIMPLE_JSON)
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    return list(response.json()["versions"])


def upstream_asked(upstream: RunningServer, project: str) -> list[str]:
    return [line for line in upstream.log_text().splitlines() if f"/simple/{project}/" in line]


def test_pip_and_uv_install_a_private_package_and_its_public_dependency(
    company: RunningServer, upstream: RunningServer, tmp_path: Path
) -> None:
    python = make_venv(tmp_path / "pip")
    run(python, "-m", "pip", "install", "--index-url", company.index_url("all"), "acme-core")
    shown = run(python, "-c", "import acme_core, six; print(acme_core.VERSION, six.__version__)")
    assert shown.stdout.split() == ["1.1.0", "1.16.0"]

    uv_python = make_venv(tmp_path / "uv")
    run(
        VENV_BIN / "uv", "pip", "install", "--python", uv_python,
        "--index-url", company.index_url("all"), "acme-core", "iniconfig",
    )  # fmt: skip
    shown = run(uv_python, "-c", "import acme_core, iniconfig, six; print(acme_core.VERSION)")
    assert shown.stdout.strip() == "1.1.0"
    # the public files were fetched once, checked, and are now served from the cache
    with company.client() as client:
        entry = next(
            f
            for f in client.get("/pypi/all/simple/six/", headers=SIMPLE_JSON).json()["files"]
            if f["filename"].endswith(".whl")
        )
        again = client.get(file_path(entry))
        assert again.status_code == 200
        assert again.headers["etag"] == f'"{entry["hashes"]["sha256"]}"'


def test_a_hosted_name_gets_nothing_from_upstream_and_the_upstream_is_never_asked(
    company: RunningServer, upstream: RunningServer
) -> None:
    with company.client() as client:
        assert versions(client, "acme-core") == ["1.0.0", "1.1.0"]
        assert versions(client, "acme-core", "pypi-public") == ["99.0.0"]  # the proxy alone
        assert versions(client, "acme-core") == ["1.0.0", "1.1.0"]
    # asked once, by the request to the proxy itself, never through the group
    assert len(upstream_asked(upstream, "acme-core")) == 1


def test_allow_upstream_lets_a_hosted_name_take_upstream_files(
    company: RunningServer, upstream: RunningServer
) -> None:
    company.run_cli("repo", "update", "all", "--allow-upstream", "Acme_Core")
    try:
        with company.client() as client:
            assert versions(client, "acme-core") == ["1.0.0", "1.1.0", "99.0.0"]
    finally:
        company.run_cli("repo", "update", "all", "--allow-upstream", "")
    with company.client() as client:
        assert versions(client, "acme-core") == ["1.0.0", "1.1.0"]


def test_a_group_built_on_another_does_not_take_its_allow_upstream_list(
    company: RunningServer,
) -> None:
    """Opening a hosted name to upstreams is decided by the repository read: a group whose
    bases include `all` keeps the squatted 99.0.0 out although `all` lets it in."""
    company.run_cli("repo", "create", "nested", "--bases", "all")
    company.run_cli("repo", "update", "all", "--allow-upstream", "acme-core")
    try:
        with company.client() as client:
            assert versions(client, "acme-core") == ["1.0.0", "1.1.0", "99.0.0"]
            assert versions(client, "acme-core", "nested") == ["1.0.0", "1.1.0"]
            company.run_cli("repo", "update", "nested", "--allow-upstream", "acme-core")
            assert versions(client, "acme-core", "nested") == ["1.0.0", "1.1.0", "99.0.0"]
    finally:
        company.run_cli("repo", "update", "all", "--allow-upstream", "")
        company.run_cli("repo", "update", "nested", "--allow-upstream", "")


def test_the_project_list_of_a_proxy_is_what_it_has_cached(company: RunningServer) -> None:
    with company.client() as client:
        assert versions(client, "six")
        listed = client.get("/pypi/pypi-public/simple/", headers=SIMPLE_JSON).json()
        names = {p["name"] for p in listed["projects"]}
        assert "six" in names
        assert "never-asked-for" not in names
        group = client.get("/pypi/all/simple/", headers=SIMPLE_JSON).json()
        assert {"acme-core", "six"} <= {p["name"] for p in group["projects"]}


def test_cooldowns_hide_young_upstream_files_except_exempt_names(
    company: RunningServer,
) -> None:
    with company.client() as client:
        assert versions(client, "six") == ["1.16.0"]
        company.run_cli("repo", "update", "all", "--min-age", "3d")
        try:
            assert versions(client, "six") == []  # uploaded upstream moments ago
            held = client.get("/pypi/all/simple/six/", headers=SIMPLE_JSON)
            assert "every file of 'six' that pypi/pypi-public has upstream is newer" in held.text
            assert "--cooldown-exempt" in held.text  # says why, not a bare "no project"
            assert versions(client, "acme-core") == ["1.0.0", "1.1.0"]  # hosted: no cooldown
            company.run_cli("repo", "update", "all", "--cooldown-exempt", "six")
            assert versions(client, "six") == ["1.16.0"]
        finally:
            company.run_cli("repo", "update", "all", "--min-age", "none", "--cooldown-exempt", "")
        company.run_cli("repo", "update", "pypi-public", "--exclude-newer", "2020-01-01")
        try:
            assert versions(client, "six") == []
            assert versions(client, "six", "pypi-public") == []
        finally:
            company.run_cli("repo", "update", "pypi-public", "--exclude-newer", "none")
        assert versions(client, "six") == ["1.16.0"]


def test_repository_settings_are_journalled_without_the_upstream_secret(
    company: RunningServer, tmp_path: Path
) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-upstream-token-value\n")
    company.run_cli(
        "repo", "update", "pypi-public", "--upstream-user", "mirror",
        "--upstream-password-file", str(secret),
    )  # fmt: skip
    try:
        listed = company.run_cli("repo", "list").stdout
        journal = company.run_cli("journal", "--repo", "pypi/pypi-public").stdout
        assert "s3cr3t" not in listed + journal
        with company.client() as client:
            body = client.get("/api/v1/repositories/pypi/pypi-public").text
            assert "s3cr3t" not in body
            # the upstream is public: credentials it does not need change nothing
            assert versions(client, "six") == ["1.16.0"]
    finally:
        company.run_cli("repo", "update", "pypi-public", "--no-upstream-auth")
    assert "s3cr3t" not in company.log_text()


def test_bad_repository_settings_are_refused_with_the_reason(company: RunningServer) -> None:
    cases = {
        ("repo", "create", "x1", "--upstream", "file:///etc/"): "http:// or https://",
        ("repo", "create", "x2", "--upstream", "http://u:p@127.0.0.1/simple/"): "credentials",
        ("repo", "update", "all", "--min-age", "soon"): "cannot read the duration",
        ("repo", "update", "all", "--exclude-newer", "last tuesday"): "cannot read the date",
        ("repo", "update", "main", "--ttl", "10m"): "not a proxy",
        ("repo", "update", "all", "--bases", "main,nope"): "no pypi repository named 'nope'",
        ("repo", "update", "main", "--bases", "all"): "cycle",
        ("repo", "update", "all", "--allow-upstream", "bad name!"): "not a valid project name",
    }
    for argv, reason in cases.items():
        result = company.run_cli(*argv, check=False)
        assert result.returncode != 0, argv
        assert reason in result.stderr + result.stdout, (argv, result.stderr)
        assert "Traceback" not in result.stderr
    listed = company.run_cli("repo", "list").stdout
    assert "x1" not in listed
    assert "x2" not in listed
    with httpx.Client(base_url=company.url, auth=("admin", company.admin_password)) as client:
        assert versions(client, "acme-core") == ["1.0.0", "1.1.0"]


def test_a_json_page_from_the_proxy_keeps_the_upstream_facts(company: RunningServer) -> None:
    with company.client() as client:
        page = client.get("/pypi/all/simple/six/", headers=SIMPLE_JSON).json()
    wheel = next(f for f in page["files"] if f["filename"].endswith(".whl"))
    assert wheel["requires-python"] == ">=2.7, !=3.0.*, !=3.1.*, !=3.2.*"
    assert wheel["upload-time"].endswith("Z")
    assert wheel["size"] == 11053
    assert isinstance(wheel["core-metadata"], dict)
    with company.client() as client:
        metadata = client.get(file_path(wheel) + ".metadata")
    assert metadata.status_code == 200
    assert b"Name: six" in metadata.content
    assert json.dumps(page)  # serialisable, nothing odd


def metric(server: RunningServer, kind: str, outcome: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    line = f'packhouse_proxy_cache_total{{kind="{kind}",outcome="{outcome}"}} '
    return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])


def test_metrics_count_the_cache_and_prune_forgets_what_is_fetched_again(
    company: RunningServer,
) -> None:
    with company.client() as client:
        files = client.get("/pypi/all/simple/six/", headers=SIMPLE_JSON).json()["files"]
        wheel = next(f for f in files if f["filename"].endswith(".whl"))
        assert client.get(file_path(wheel)).status_code == 200
        hits = metric(company, "file", "hit")
        misses = metric(company, "file", "miss")
        assert misses >= 1
        assert metric(company, "index", "miss") >= 1

        dry = company.run_cli("cache", "prune", "--max-size", "0", "--dry-run").stdout
        assert "would forget" in dry
        assert client.get(file_path(wheel)).status_code == 200
        assert metric(company, "file", "hit") == hits + 1

        # pages too: a page served before still lists the file, which is found again
        done = company.run_cli("cache", "prune", "--older-than", "0s", "--max-size", "0").stdout
        assert "forgot" in done
        assert "0 files (0 B) kept" in done
        again = client.get(file_path(wheel))
        assert again.status_code == 200
        assert metric(company, "file", "miss") == misses + 1
    refused = company.run_cli("cache", "prune", "--max-size", "lots", check=False)
    assert refused.returncode == 2
    assert "cannot read the size" in refused.stderr


def test_the_json_api_reads_through_the_proxy_and_keeps_the_confusion_rule(
    company: RunningServer,
) -> None:
    with company.client() as client:
        six = client.get("/pypi/all/pypi/six/json")
        assert six.status_code == 200, six.text
        doc = six.json()
        assert doc["info"]["version"] == "1.16.0"
        files = doc["releases"]["1.16.0"]
        assert sorted(f["filename"] for f in files) == [
            "six-1.16.0-py2.py3-none-any.whl",
            "six-1.16.0.tar.gz",
        ]
        wheel = next(f for f in files if f["filename"].endswith(".whl"))
        assert wheel["url"].startswith(f"{company.url}/files/{wheel['digests']['sha256']}/")
        assert client.get(wheel["url"]).status_code == 200
        assert client.get("/pypi/all/pypi/six/1.16.0/json").status_code == 200
        # a hosted name: only the company's releases, never the squatted 99.0.0
        acme = client.get("/pypi/all/pypi/acme-core/json").json()
        assert sorted(acme["releases"]) == ["1.0.0", "1.1.0"]
        assert acme["info"]["version"] == "1.1.0"
        assert client.get("/pypi/all/pypi/no-such-project/json").status_code == 404
