"""The real conda client (26.7.1, classic and rattler solvers, conda-index), installed once per
test session from ../shared/clients (conda is not on PyPI; see its README.md).

Import the fixture into a test module: `from tests.clients.conda_client import conda_fixture`.
It skips, saying why, only when that folder is missing (an install that fails is an error).
Each `Conda` run asks nobody but the channels it names (`--override-channels`; the venv's own
condarc has no default channels) and reads no one's `~/.condarc`: HOME is a folder of the
test's own, where it may write one.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT.parent / "shared" / "clients"
INSTALLER = CLIENTS / "install-conda.sh"
SOLVERS = ("rattler", "classic")

# The end of every py-rattler script the tests run with `python -c`: runs its
# `async def main(*argv)`, prints what failed, and exits at once (rattler's runtime threads
# can otherwise keep the process alive after main returns).
RATTLER_RUN = """
import asyncio as _asyncio, os as _os, sys as _sys, traceback as _traceback

try:
    _asyncio.run(main(*_sys.argv[1:]))
except BaseException:
    _traceback.print_exc()
finally:
    _sys.stdout.flush()
    _sys.stderr.flush()
    _os._exit(0)
"""


@dataclass(frozen=True)
class Conda:
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self, home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment of the test's own: no CONDA_* of the caller, a fresh pkgs dir
        (conda keeps repodata and packages there) and HOME under `home`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "MAMBA"))}
        env.update(
            HOME=str(home),
            CONDA_PKGS_DIRS=str(home / "pkgs"),
            CONDA_REPORT_ERRORS="false",
            CONDA_AUTO_UPDATE_CONDA="false",
            NO_COLOR="1",
        )
        env.update(extra or {})
        return env

    def run(
        self,
        *args: str | Path,
        home: Path,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        home.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [str(self.python), "-m", "conda", *map(str, args)],
            capture_output=True,
            text=True,
            env=self.env(home, env),
            cwd=home,
            timeout=240,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"conda {' '.join(map(str, args[:2]))} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def json(self, *args: str | Path, home: Path, **kwargs: Any) -> Any:
        result = self.run(*args, "--json", home=home, **kwargs)
        return json.loads(result.stdout)


def installed(prefix: Path) -> set[str]:
    """`name-version-build` of every package in a conda prefix."""
    return {p.name.removesuffix(".json") for p in (prefix / "conda-meta").glob("*-*.json")}


@pytest.fixture(scope="session", name="conda")
def conda_fixture(tmp_path_factory: pytest.TempPathFactory) -> Conda:
    """conda installed into a virtual environment of this session (about ten seconds)."""
    if not CLIENTS.is_dir():
        pytest.skip(f"the real conda client is not here: {CLIENTS} is missing")
    venv = tmp_path_factory.mktemp("conda-client") / "venv"
    result = subprocess.run(
        ["bash", str(INSTALLER), str(venv)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, f"install-conda.sh failed:\n{result.stdout}\n{result.stderr}"
    return Conda(venv)
