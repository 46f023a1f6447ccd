"""`packhouse user ...`: add, list, passwd, admin, disable, enable."""

from __future__ import annotations

from typing import Annotated

import typer

from packhouse.cli.common import ConfigOption, DataOption, console, open_services, read_secret

app = typer.Typer(
    help="Manage users.",
    epilog="Example: packhouse user add alice --admin",
    no_args_is_help=True,
)


@app.command("add")
def add(
    name: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    service: Annotated[
        bool,
        typer.Option(
            "--service",
            help="A service account (a CI bot): no password, cannot sign in, only holds tokens.",
        ),
    ] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a user; the password comes from a hidden prompt, or stdin when piped. A service
    account (--service) has none: it acts only through the tokens made for it.

    Examples:

      packhouse user add alice

      echo "$PASSWORD" | packhouse user add release-bot

      packhouse user add ci --service
    """
    from packhouse.services import accounts

    password = None if service else read_secret(f"Password for {name}")
    with open_services(data, config) as svc:
        accounts.create_user(
            svc.ctx, actor="cli", name=name, password=password, admin=admin, service=service
        )
    what = "service account" if service else "user"
    console.print(f"added {what} [bold]{name}[/]{' (administrator)' if admin else ''}")
    if service:
        console.print(
            f"  grant it a right, then make its token:\n"
            f"  packhouse repo grant pypi/main {name} upload\n"
            f"  packhouse token create --user {name} --repo pypi/main --scope upload --name ci",
            highlight=False,
        )


@app.command("passwd")
def passwd(name: str, data: DataOption = None, config: ConfigOption = None) -> None:
    """Set a user's password (prompt, or stdin when piped).

    Example:

      packhouse user passwd alice
    """
    from packhouse.services import accounts

    password = read_secret(f"New password for {name}")
    with open_services(data, config) as svc:
        accounts.set_password(svc.ctx, actor="cli", name=name, password=password)
        console.print(f"changed the password of {name}")


def _set_disabled(name: str, disabled: bool, data: DataOption, config: ConfigOption) -> None:
    from packhouse.services import accounts

    with open_services(data, config) as svc:
        accounts.update_user(svc.ctx, actor="cli", name=name, disabled=disabled)
    console.print(f"{'disabled' if disabled else 'enabled'} {name}")


@app.command("disable")
def disable(name: str, data: DataOption = None, config: ConfigOption = None) -> None:
    """Disable a user: their password and tokens stop working at once.

    Example:

      packhouse user disable alice
    """
    _set_disabled(name, True, data, config)


@app.command("enable")
def enable(name: str, data: DataOption = None, config: ConfigOption = None) -> None:
    """Enable a disabled user again.

    Example:

      packhouse user enable alice
    """
    _set_disabled(name, False, data, config)


@app.command("admin")
def admin_flag(
    name: str,
    revoke: Annotated[bool, typer.Option("--revoke", help="Take the flag away.")] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Make a user an administrator (or, with --revoke, no longer one).

    Examples:

      packhouse user admin alice

      packhouse user admin alice --revoke
    """
    from packhouse.services import accounts

    with open_services(data, config) as svc:
        accounts.update_user(svc.ctx, actor="cli", name=name, admin=not revoke)
    console.print(f"{name} is {'no longer ' if revoke else ''}an administrator")


@app.command("list")
def list_users(data: DataOption = None, config: ConfigOption = None) -> None:
    """List users and their groups.

    Example:

      packhouse user list
    """
    from rich.table import Table

    from packhouse.services import accounts

    with open_services(data, config) as svc:
        groups = svc.access.snapshot().groups
        table = Table("name", "kind", "admin", "disabled", "groups")
        for u in accounts.list_users(svc.ctx):
            table.add_row(
                u.name,
                "service" if u.is_service else "user",
                "yes" if u.is_admin else "",
                "yes" if u.disabled else "",
                ", ".join(sorted(groups.get(u.id, ()))),
            )
    console.print(table)
