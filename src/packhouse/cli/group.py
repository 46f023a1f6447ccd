"""`packhouse group ...`: create, delete, add, remove, list."""

from __future__ import annotations

import typer

from packhouse.cli.common import ConfigOption, DataOption, console, open_services

app = typer.Typer(
    help="Manage groups of users (grant them access with `repo grant NAME GROUP ACTION --group`).",
    epilog="Example: packhouse group create devs && packhouse group add devs alice",
    no_args_is_help=True,
)


@app.command("create")
def create(name: str, data: DataOption = None, config: ConfigOption = None) -> None:
    """Create an empty group.

    Example:

      packhouse group create developers
    """
    from packhouse.services import accounts

    with open_services(data, config) as svc:
        accounts.create_group(svc.ctx, actor="cli", name=name)
    console.print(f"created group [bold]{name}[/]")


@app.command("delete")
def delete(name: str, data: DataOption = None, config: ConfigOption = None) -> None:
    """Delete a group and every permission granted to it.

    Example:

      packhouse group delete developers
    """
    from packhouse.services import accounts

    with open_services(data, config) as svc:
        accounts.delete_group(svc.ctx, actor="cli", name=name)
    console.print(f"deleted group {name}")


@app.command("add")
def add(group: str, user: str, data: DataOption = None, config: ConfigOption = None) -> None:
    """Add a user to a group.

    Example:

      packhouse group add developers alice
    """
    from packhouse.services import accounts

    with open_services(data, config) as svc:
        changed = accounts.set_membership(svc.ctx, actor="cli", group=group, user=user, member=True)
    console.print(f"added {user} to {group}" if changed else f"{user} was already in {group}")


@app.command("remove")
def remove(group: str, user: str, data: DataOption = None, config: ConfigOption = None) -> None:
    """Take a user out of a group.

    Example:

      packhouse group remove developers alice
    """
    from packhouse.services import accounts

    with open_services(data, config) as svc:
        changed = accounts.set_membership(
            svc.ctx, actor="cli", group=group, user=user, member=False
        )
    console.print(f"removed {user} from {group}" if changed else f"{user} was not in {group}")


@app.command("list")
def list_groups(data: DataOption = None, config: ConfigOption = None) -> None:
    """List groups and their members.

    Example:

      packhouse group list
    """
    from rich.table import Table

    from packhouse.services import accounts

    with open_services(data, config) as svc:
        found = accounts.list_groups(svc.ctx)
    table = Table("group", "members")
    for g in found:
        table.add_row(g.name, ", ".join(g.members))
    console.print(table)
