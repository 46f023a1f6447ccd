"""Options every data command shares, and how the CLI builds what it needs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer

from packhouse.errors import PackhouseError

if TYPE_CHECKING:
    from rich.console import Console

    from packhouse.config import Settings
    from packhouse.wiring import Services

# Start-up is kept short (`packhouse --version` in well under 0.3 s): nothing here, nor at the
# top of the command modules, imports the settings, the database, the services or the web
# application; each command imports what it needs. tests/test_cli_startup.py holds this.

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        envvar="PACKHOUSE_DATA",
        help="Data directory (SQLite database and blobs). Default: ./packhouse-data",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="PACKHOUSE_CONFIG",
        help="TOML settings file; PACKHOUSE_* environment variables override it.",
        show_default=False,
    ),
]


class _DeferredConsole:
    """A rich Console made on first use: importing rich costs more than the rest of a
    quick command's start-up."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def _made(self) -> Console:
        if self._console is None:
            from rich.console import Console

            # Off a terminal (CI logs, pipes) nothing is wrapped or cut at 80 columns.
            width = None if sys.stdout.isatty() else 1000
            self._console = Console(stderr=self._stderr, soft_wrap=True, width=width)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    # rich's Live (progress bars) enters the console: special methods skip __getattr__
    def __enter__(self) -> Console:
        return self._made().__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        self._made().__exit__(*exc_info)


console = cast("Console", _DeferredConsole(stderr=False))
err_console = cast("Console", _DeferredConsole(stderr=True))


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def settings_from(data: Path | None, config: Path | None, **overrides: object) -> Settings:
    from packhouse.config import load_settings

    try:
        return load_settings(config, data=data, **overrides)
    except PackhouseError as exc:
        fail(exc.message, 2)


@contextmanager
def open_services(data: Path | None, config: Path | None) -> Iterator[Services]:
    """Services over the same data the server uses; safe while the server runs."""
    from packhouse.wiring import Services, build_context

    settings = settings_from(data, config)
    database = settings.data / "packhouse.db"
    if not settings.database_url and not database.exists():
        fail(
            f"there is no Packhouse database at {database.absolute()}: point --data (or"
            " PACKHOUSE_DATA) at the server's data directory, or create one there with"
            " `packhouse db upgrade --data DIR`"
        )
    try:
        svc = Services.of(build_context(settings), lazy=True)
    except PackhouseError as exc:
        fail(exc.message)
    try:
        yield svc
    except PackhouseError as exc:
        fail(exc.message)
    finally:
        svc.close()


def read_secret(prompt: str) -> str:
    """A password from a hidden prompt on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        value: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=True)
        return value
    return sys.stdin.readline().rstrip("\r\n")
