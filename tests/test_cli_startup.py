"""The CLI starts without the server: importing it pulls in no web framework, database,
settings or HTTP stack, and `packhouse --version` answers at once (docs/benchmarks.md has the
figures). Each check runs in a fresh interpreter, where nothing is imported yet."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from importlib.metadata import version

from tests.conftest import VENV_BIN

# What a command imports when it runs, never at start-up.
NOT_AT_START = (
    "fastapi",
    "starlette",
    "granian",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "boto3",
    "httpx",
    "pydantic",
    "pydantic_settings",
    "rich",
    "packhouse.config",
    "packhouse.wiring",
    "packhouse.web",
    "packhouse.services",
    "packhouse.db",
)

_PROBE = """
import sys
import packhouse.cli.main
loaded = sorted({m.split(".")[0] if not m.startswith("packhouse.") else m for m in sys.modules})
print("\\n".join(loaded))
"""


def _loaded_after(code: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def test_importing_the_cli_pulls_in_no_web_framework_database_or_settings() -> None:
    loaded = _loaded_after(_PROBE)
    assert "packhouse.cli.main" in loaded  # the probe did import it
    early = sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in NOT_AT_START))
    assert not early, f"imported at CLI start-up: {early}; import them inside the command"


def test_version_prints_the_installed_version_and_loads_nothing_heavy() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "packhouse"), "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout == f"packhouse {version('packhouse')}\n"
    probe = (
        "import sys\nfrom packhouse.cli.main import main\nsys.argv = ['packhouse', '--version']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sys.modules))"
    )
    loaded = _loaded_after(probe)
    assert not {"fastapi", "starlette", "sqlalchemy", "rich", "pydantic"} & loaded


def test_every_command_still_builds_its_help() -> None:
    """Typer reads each command's annotations when it builds the command: a name moved
    under TYPE_CHECKING that a signature still needs breaks only then."""
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["repo", "create", "--help"],
        ["token", "create", "--help"],
        ["upload", "--help"],
        ["conda", "index", "--help"],
        ["conda", "patch", "--help"],
        ["promote", "--help"],
        ["yank", "--help"],
        ["fsck", "--help"],
        ["cache", "prune", "--help"],
    ):
        result = subprocess.run(
            [str(VENV_BIN / "packhouse"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage: packhouse" in result.stdout


_PROGRESS_ON_A_TERMINAL = """
import time
from rich.progress import Progress
from packhouse.cli.common import console, err_console
assert err_console.is_terminal
with Progress(console=err_console, transient=True) as bar:  # as `packhouse upload` does
    task = bar.add_task("sending", total=2)
    for _ in range(2):
        bar.update(task, advance=1)
        time.sleep(0.02)
console.print("done")
"""


def test_the_deferred_consoles_drive_a_progress_bar_on_a_terminal() -> None:
    """The shared consoles are made on first use; rich's Live enters them as context
    managers on a terminal, which a plain attribute proxy does not support."""
    leader, follower = os.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROGRESS_ON_A_TERMINAL],
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=follower,
            timeout=60,
            check=False,
        )
        os.close(follower)
        output = b""
        with contextlib.suppress(OSError):  # EIO once the terminal's writer is gone
            while chunk := os.read(leader, 65536):
                output += chunk
    finally:
        os.close(leader)
    assert result.returncode == 0, output.decode(errors="replace")
    assert b"done" in output
