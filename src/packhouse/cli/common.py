"""Options every data command shares, and how the CLI builds what it needs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from packhouse.config import Settings, load_settings
from packhouse.errors import PackhouseError
from packhouse.wiring import Services, build_context

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

# Off a terminal (CI logs, pipes) nothing is wrapped or cut at 80 columns.
_WIDTH = None if sys.stdout.isatty() else 1000
console = Console(stderr=False, soft_wrap=True, width=_WIDTH)
err_console = Console(stderr=True, soft_wrap=True, width=_WIDTH)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def settings_from(data: Path | None, config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, data=data, **overrides)
    except PackhouseError as exc:
        fail(exc.message, 2)


@contextmanager
def open_services(data: Path | None, config: Path | None) -> Iterator[Services]:
    """Services over the same data the server uses; safe while the server runs."""
    settings = settings_from(data, config)
    database = settings.data / "packhouse.db"
    if not settings.database_url and not database.exists():
        fail(
            f"there is no Packhouse database at {database.absolute()}: point --data (or"
            " PACKHOUSE_DATA) at the server's data directory, or create one there with"
            " `packhouse db upgrade --data DIR`"
        )
    try:
        svc = Services.of(build_context(settings))
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
