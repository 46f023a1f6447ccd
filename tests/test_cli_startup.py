"""The CLI starts without the server: importing it pulls in no web framework, database,
settings or HTTP stack, and `packhouse --version` answers at once (docs/benchmarks.md has the
figures). Each check runs in a fresh interpreter, where nothing is imported yet."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from tests.conftest import VENV_BIN

CONDA_PACKAGES = Path(__file__).parent / "data" / "conda" / "conda" / "test-recipes" / "noarch"

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


_MODULES_AFTER = """
import sys
sys.argv = ["packhouse", *sys.argv[1:]]
from packhouse.cli.main import main
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print("\\n".join(sys.modules))
"""

# What an admin command that does not serve never needs: the migration machinery (the
# database is at the head already), the web stack, HTTP clients, the readers and proxies.
NOT_FOR_ADMIN = (
    "alembic",
    "mako",
    "starlette",
    "fastapi",
    "granian",
    "uvicorn",
    "httpx",
    "packhouse.web",
    "packhouse.services.pypi_reads",
    "packhouse.services.conda_reads",
    "packhouse.services.upstream_cache",
)


def _modules_of(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", _MODULES_AFTER, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def _upgraded(data: Path) -> Path:
    """A data directory at the newest migration."""
    upgraded = subprocess.run(
        [str(VENV_BIN / "packhouse"), "db", "upgrade", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    return data


def test_admin_commands_skip_alembic_at_the_head_and_load_little_more_than_version(
    tmp_path: Path,
) -> None:
    """`packhouse user list` or `repo list` on a database at the newest migration imports no
    Alembic (db/revision.py compares the stored revision with the files' head) and nothing of
    the server. Start-up cost is counted in modules, not seconds: before, such a command
    loaded 3.8 times the modules of `--version` (879 to 229); now about 2.4 times."""
    data = _upgraded(tmp_path / "data")
    baseline = len(_modules_of("--version"))
    for command in (["user", "list"], ["repo", "list"], ["token", "list"]):
        loaded = _modules_of(*command, "--data", str(data))
        assert "packhouse.db.revision" in loaded  # it did check the revision
        heavy = sorted(
            m for m in loaded if any(m == n or m.startswith(n + ".") for n in NOT_FOR_ADMIN)
        )
        assert not heavy, f"packhouse {' '.join(command)} imported {heavy[:8]}"
        assert len(loaded) < 3 * baseline, (command, len(loaded), baseline)


# What a run never needs for its arguments (Typer 0.2x would coerce them with pydantic:
# packhouse.cli.coercion spares it) nor for another command's module: a run mounts only the
# command it names.
NOT_FOR_ARGUMENTS = ("typer._adapters", "packhouse.cli.serve", "packhouse.cli.repo")

# What `packhouse conda index DIR` needs for none of its work when nothing changed.
NOT_FOR_A_QUIET_REINDEX = (
    *NOT_FOR_ARGUMENTS,
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "rich",
    "sqlalchemy",
    "packhouse.config",
    "packhouse.services.conda_index_write",
    "packhouse.formats.conda.archive",
    "zstandard",
)


def _early(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in names))


def test_a_reindex_that_finds_nothing_changed_loads_only_the_indexer(tmp_path: Path) -> None:
    """`packhouse conda index DIR` on an indexed channel: no pydantic (arguments), no rich
    (plain output off a terminal), no writer or package reader; also with channeldata."""
    channel = tmp_path / "channel"
    (channel / "noarch").mkdir(parents=True)
    for package in sorted(CONDA_PACKAGES.glob("*.conda"))[:2]:
        (channel / "noarch" / package.name).write_bytes(package.read_bytes())
    for options in (["--no-channeldata", "--threads", "1"], []):
        first = subprocess.run(
            [str(VENV_BIN / "packhouse"), "conda", "index", *options, str(channel)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert first.returncode == 0, first.stderr
        assert "indexed 2 packages" in first.stdout, first.stdout
        loaded = _modules_of("conda", "index", *options, str(channel))
        assert "packhouse.services.conda_index" in loaded  # it did run the indexer
        heavy = _early(loaded, NOT_FOR_A_QUIET_REINDEX)
        assert not heavy, f"conda index {options} with nothing changed imported {heavy[:8]}"


def test_admin_commands_coerce_their_arguments_without_pydantic_and_mount_one_command(
    tmp_path: Path,
) -> None:
    data = _upgraded(tmp_path / "data")
    for command in (["user", "list"], ["token", "list"], ["journal", "--limit", "5"]):
        loaded = _modules_of(*command, "--data", str(data))
        assert f"packhouse.cli.{'journal' if command[0] == 'journal' else command[0]}" in loaded
        heavy = _early(loaded, tuple(n for n in NOT_FOR_ARGUMENTS if n != "typer._adapters"))
        assert not heavy, f"packhouse {' '.join(command)} imported {heavy}"
        if command[0] != "journal":  # --limit has a range, which Typer's own coercion checks
            assert "typer._adapters" not in loaded, command


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
