"""The `packhouse` command.

The command modules import only Typer and small modules of ours at their top; what a command
needs (settings, database, services, the web application) it imports when it runs, so that
`packhouse --version` or `packhouse token list` does not pay for the whole server.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

_cli = typer.Typer(
    name="packhouse",
    help="Packhouse: private PyPI indexes and conda channels in one server.",
    epilog="Example: packhouse serve --data ./packhouse-data --port 8080",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"packhouse {version('packhouse')}")
        raise typer.Exit()


@_cli.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Packhouse: private PyPI indexes and conda channels in one server."""


# Each top-level command: (module under packhouse.cli, the function or Typer app in it), in
# the order `packhouse --help` lists them. A run mounts only the command it names (importing
# that one module and building that one group: Typer makes every parameter of every mounted
# command up front), and all of them for `--help` or a name it doesn't know.
_COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "serve"),
    "repo": ("repo", "app"),
    "user": ("user", "app"),
    "group": ("group", "app"),
    "token": ("token", "app"),
    "journal": ("journal", "journal"),
    "yank": ("admin", "yank"),
    "unyank": ("admin", "unyank"),
    "delete": ("admin", "delete"),
    "db": ("admin", "db_app"),
    "fsck": ("admin", "fsck"),
    "upload": ("upload", "upload"),
    "cache": ("cache", "app"),
    "promote": ("promote", "promote"),
    "export": ("transfer", "export"),
    "import": ("transfer", "import_"),
    "pypi": ("pypi", "app"),
    "oidc": ("oidc", "app"),
    "conda": ("conda", "app"),
}
_mounted: set[str] = set()


def _mount(name: str) -> None:
    if name in _mounted:
        return
    _mounted.add(name)
    module_name, attribute = _COMMANDS[name]
    target = getattr(importlib.import_module(f"packhouse.cli.{module_name}"), attribute)
    if name == "conda":
        from packhouse.cli import upload

        target.command("patch")(upload.patch)
        _cli.add_typer(
            target,
            name="conda",
            help="Conda channels: index a directory, patch a channel.",
            epilog="Example: packhouse conda index ./channel",
        )
    elif isinstance(target, typer.Typer):
        _cli.add_typer(target, name=name)
    else:
        _cli.command(name)(target)


def __getattr__(name: str) -> typer.Typer:
    """`from packhouse.cli.main import app` (tests, CliRunner): the app with every command."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for command in _COMMANDS:
        _mount(command)
    return _cli


def _named(args: list[str]) -> list[str]:
    """The commands a run needs: the one it names, none for `--version`, else all."""
    first = args[0] if args else ""
    if first in _COMMANDS:
        return [first]
    if first == "--version":
        return []
    return list(_COMMANDS)


def main() -> None:
    from packhouse.cli import coercion

    coercion.install()
    for name in _named(sys.argv[1:]):
        _mount(name)
    _cli()
