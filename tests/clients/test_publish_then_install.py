"""Publish then install is never stale: a version uploaded a moment ago is installed at once
by uv and pip with their HTTP caches on, because index pages are served `no-cache` with an
ETag (they revalidate, answered 304 while nothing changed). The same steps against a server
sending the old `max-age=60` show uv installing from its stale copy: the check can fail."""

from __future__ import annotations

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
    make_venv,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.clients

# The clients' HTTP caches are wanted here: no UV_NO_CACHE, each client its own cache dir.
_ENV = {k: v for k, v in CLIENT_ENV.items() if k != "UV_NO_CACHE"}


def _run(*argv: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env={**os.environ, **_ENV, **env},
        timeout=300,
        check=False,
    )


class _Pipeline:
    """What a CI job does: publish with `uv publish`, then install with uv and pip, each
    with its own persistent HTTP cache."""

    def __init__(self, server: RunningServer, work: Path) -> None:
        self.server = server
        self.work = work
        self.python = make_venv(work / "venv")
        self.uv_cache = work / "uv-cache"
        self.pip_cache = work / "pip-cache"
        self.installs = 0

    def publish(self, name: str, version: str) -> None:
        dist = self.work / f"dist-{version}"
        dist.mkdir()
        wheel = make_wheel(dist, name, version)
        done = _run(
            VENV_BIN / "uv", "publish", "--publish-url", f"{self.server.url}/pypi/main/",
            "-u", "admin", "-p", self.server.admin_password, wheel,
            env={"UV_CACHE_DIR": str(self.uv_cache)},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    def _target(self) -> Path:
        # A new target each time: `--reinstall` would imply uv's `--refresh`.
        self.installs += 1
        return self.work / f"target-{self.installs}"

    def uv_install(self, requirement: str) -> subprocess.CompletedProcess[str]:
        return _run(
            VENV_BIN / "uv", "pip", "install", "--python", self.python,
            "--index-url", self.server.index_url(), "--target", self._target(), requirement,
            env={"UV_CACHE_DIR": str(self.uv_cache)},
        )  # fmt: skip

    def pip_install(self, requirement: str) -> subprocess.CompletedProcess[str]:
        return _run(
            self.python, "-m", "pip", "install", "--cache-dir", self.pip_cache,
            "--index-url", self.server.index_url(), "--target", self._target(), requirement,
            env={},
        )  # fmt: skip


@pytest.fixture(scope="module")
def old_headers_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server configured with what every index page carried before: max-age=60."""
    data = tmp_path_factory.mktemp("max-age") / "data"
    running = start_server(data, {"PACKHOUSE_INDEX_MAX_AGE": "60"})
    yield running
    stop_server(running)


def test_a_version_published_a_moment_ago_installs_at_once_with_uv_and_pip_caches(
    server: RunningServer, tmp_path: Path
) -> None:
    ci = _Pipeline(server, tmp_path)
    ci.publish("ph-fresh", "1.0")
    for install in (ci.uv_install, ci.pip_install):  # both caches now hold the 1.0 page
        first = install("ph-fresh==1.0")
        assert first.returncode == 0, first.stderr

    with httpx.Client(base_url=server.url, auth=("admin", server.admin_password)) as client:
        page = client.get("/pypi/main/simple/ph-fresh/", headers=SIMPLE_JSON)
        assert page.headers["cache-control"].endswith(", no-cache")
        again = client.get(
            "/pypi/main/simple/ph-fresh/",
            headers={**SIMPLE_JSON, "If-None-Match": page.headers["etag"]},
        )
        assert again.status_code == 304
        api = client.get("/pypi/main/pypi/ph-fresh/json")
        assert api.headers["cache-control"].endswith(", no-cache")

    ci.publish("ph-fresh", "1.1")
    uv = ci.uv_install("ph-fresh==1.1")
    assert uv.returncode == 0, uv.stderr
    pip = ci.pip_install("ph-fresh==1.1")
    assert pip.returncode == 0, pip.stderr
    assert (tmp_path / f"target-{ci.installs}" / "ph_fresh-1.1.dist-info").is_dir()


def test_with_the_old_max_age_uv_misses_the_version_published_a_moment_ago(
    old_headers_server: RunningServer, tmp_path: Path
) -> None:
    """The control: this is what the test above would see if the pages said max-age=60."""
    ci = _Pipeline(old_headers_server, tmp_path)
    ci.publish("ph-stale", "1.0")
    assert ci.uv_install("ph-stale==1.0").returncode == 0
    ci.publish("ph-stale", "1.1")
    uv = ci.uv_install("ph-stale==1.1")
    assert uv.returncode != 0
    assert "ph-stale==1.1" in uv.stderr or "1.1" in uv.stderr, uv.stderr
