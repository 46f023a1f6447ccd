"""The `packhouse` command.

The command modules import only Typer and small modules of ours at their top; what a command
needs (settings, database, services, the web application) it imports when it runs, so that
`packhouse --version` or `packhouse token list` does not pay for the whole server.
"""

from __future__ import annotations

from typing import Annotated

import typer

from packhouse.cli import (
    admin,
    cache,
    group,
    journal,
    promote,
    pypi,
    repo,
    serve,
    token,
    transfer,
    upload,
    user,
)

app = typer.Typer(
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


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Packhouse: private PyPI indexes and conda channels in one server."""


app.command("serve")(serve.serve)
app.add_typer(repo.app, name="repo")
app.add_typer(user.app, name="user")
app.add_typer(group.app, name="group")
app.add_typer(token.app, name="token")
app.command("journal")(journal.journal)
app.command("yank")(admin.yank)
app.command("unyank")(admin.unyank)
app.command("delete")(admin.delete)
app.add_typer(admin.db_app, name="db")
app.command("fsck")(admin.fsck)
app.command("upload")(upload.upload)
app.add_typer(cache.app, name="cache")
app.command("promote")(promote.promote)
app.command("export")(transfer.export)
app.command("import")(transfer.import_)
app.add_typer(pypi.app, name="pypi")


def _add_optional_groups() -> None:
    from packhouse.cli import conda, oidc

    app.add_typer(oidc.app, name="oidc")

    conda.app.command("patch")(upload.patch)
    app.add_typer(
        conda.app,
        name="conda",
        help="Conda channels: index a directory, patch a channel.",
        epilog="Example: packhouse conda index ./channel",
    )


def main() -> None:
    _add_optional_groups()
    app()
