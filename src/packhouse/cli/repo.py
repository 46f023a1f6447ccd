"""`packhouse repo ...`: create, list, grant, revoke."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from packhouse.cli.common import ConfigOption, DataOption, console, open_services
from packhouse.services.repos import create_repository, set_bases, set_permission
from packhouse.types import Action, Format, RepoKind

app = typer.Typer(
    help="Create and list repositories, and grant access to them.",
    epilog="Example: packhouse repo create team --format pypi && packhouse repo grant team alice"
    " upload",
    no_args_is_help=True,
)

FormatOption = Annotated[Format, typer.Option("--format", "-f", help="pypi or conda.")]


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, '.', '_', '-'.")],
    fmt: FormatOption = Format.PYPI,
    base: Annotated[
        list[str] | None, typer.Option("--base", help="A base repository; repeat for more.")
    ] = None,
    public: Annotated[bool, typer.Option(help="Let anyone read it, without credentials.")] = False,
    description: Annotated[str, typer.Option(help="A line about what it holds.")] = "",
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a hosted repository (private unless --public).

    Examples:

      packhouse repo create team --format pypi

      packhouse repo create forge --format conda --public

      packhouse repo create all --format pypi --base team --base main
    """
    with open_services(data, config) as svc:
        repo = create_repository(
            svc.ctx,
            actor="cli",
            name=name,
            fmt=fmt,
            kind=RepoKind.HOSTED,
            bases=base or (),
            public=public,
            description=description,
        )
        url = svc.ctx.settings.base_url
        where = (
            f"{url}/pypi/{repo.name}/simple/" if fmt is Format.PYPI else f"{url}/conda/{repo.name}/"
        )
        console.print(f"created {fmt} repository [bold]{repo.name}[/] at {where}", highlight=False)


@app.command("bases")
def bases(
    name: str,
    base: Annotated[list[str], typer.Option("--base", help="Base repositories, in order.")],
    fmt: FormatOption = Format.PYPI,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Set the ordered bases a repository reads through.

    Example:

      packhouse repo bases all --base team --base main
    """
    with open_services(data, config) as svc:
        set_bases(svc.ctx, actor="cli", fmt=fmt, name=name, bases=base)
        console.print(f"{name} now reads through: {', '.join(base)}")


@app.command("list")
def list_repos(data: DataOption = None, config: ConfigOption = None) -> None:
    """List repositories.

    Example:

      packhouse repo list
    """
    with open_services(data, config) as svc:
        table = Table("format", "name", "kind", "bases", "public", "last serial")
        for r in svc.catalog.all():
            table.add_row(
                r.format,
                r.name,
                r.kind,
                ", ".join(r.bases),
                "yes" if svc.access.is_public(r.id) else "no",
                str(r.last_serial),
            )
        console.print(table)


@app.command("grant")
def grant(
    name: str,
    principal: Annotated[
        str, typer.Argument(help="A user, a group (with --group), :authenticated: or :anonymous:")
    ],
    action: Annotated[Action, typer.Argument(help="read, upload or admin")],
    fmt: FormatOption = Format.PYPI,
    group: Annotated[bool, typer.Option("--group", help="PRINCIPAL names a group.")] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Grant an action on a repository (replacing what that principal had).

    Examples:

      packhouse repo grant main alice upload

      packhouse repo grant main :anonymous: read

      packhouse repo grant main developers read --group
    """
    _set(data, config, fmt, name, principal, action, group)
    console.print(f"granted {action} on {fmt}/{name} to {principal}", highlight=False)


@app.command("revoke")
def revoke(
    name: str,
    principal: str,
    fmt: FormatOption = Format.PYPI,
    group: Annotated[bool, typer.Option("--group", help="PRINCIPAL names a group.")] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Take away whatever a principal was granted on a repository.

    Example:

      packhouse repo revoke main :anonymous:
    """
    _set(data, config, fmt, name, principal, None, group)
    console.print(f"revoked {principal}'s access to {fmt}/{name}", highlight=False)


def _set(
    data: DataOption,
    config: ConfigOption,
    fmt: Format,
    name: str,
    principal: str,
    action: Action | None,
    group: bool,
) -> None:
    with open_services(data, config) as svc:
        set_permission(
            svc.ctx,
            actor="cli",
            fmt=fmt,
            name=name,
            principal=principal,
            action=action,
            kind="group" if group else None,
        )
