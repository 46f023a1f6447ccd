"""`packhouse user ...`: add, list, passwd, disable, enable."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from packhouse.auth.passwords import hash_password
from packhouse.cli.common import ConfigOption, DataOption, console, open_services, read_secret
from packhouse.db import journal_store, user_store

app = typer.Typer(help="Manage users.", no_args_is_help=True)


@app.command("add")
def add(
    name: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a user; the password comes from a hidden prompt, or stdin when piped.

    Examples:

      packhouse user add alice

      echo "$PASSWORD" | packhouse user add ci-bot
    """
    password = read_secret(f"Password for {name}")
    with open_services(data, config) as svc:
        hashed = hash_password(password)
        with svc.ctx.db.write() as conn:
            journal_store.append(
                conn, actor="cli", action="user.create", detail={"user": name, "admin": admin}
            )
            user_store.create_user(conn, name, hashed, admin)
        console.print(f"added user [bold]{name}[/]{' (administrator)' if admin else ''}")


@app.command("passwd")
def passwd(name: str, data: DataOption = None, config: ConfigOption = None) -> None:
    """Set a user's password (prompt, or stdin when piped).

    Example:

      packhouse user passwd alice
    """
    password = read_secret(f"New password for {name}")
    with open_services(data, config) as svc:
        hashed = hash_password(password)
        with svc.ctx.db.write() as conn:
            user = user_store.require_user(conn, name)
            journal_store.append(conn, actor="cli", action="user.password", detail={"user": name})
            user_store.update_user(conn, user.id, password_hash=hashed)
        console.print(f"changed the password of {name}")


def _set_disabled(name: str, disabled: bool, data: DataOption, config: ConfigOption) -> None:
    with open_services(data, config) as svc, svc.ctx.db.write() as conn:
        user = user_store.require_user(conn, name)
        journal_store.append(
            conn,
            actor="cli",
            action="user.disable" if disabled else "user.enable",
            detail={"user": name},
        )
        user_store.update_user(conn, user.id, disabled=disabled)
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


@app.command("list")
def list_users(data: DataOption = None, config: ConfigOption = None) -> None:
    """List users.

    Example:

      packhouse user list
    """
    with open_services(data, config) as svc, svc.ctx.db.read() as conn:
        table = Table("name", "admin", "disabled")
        for u in user_store.list_users(conn):
            table.add_row(u.name, "yes" if u.is_admin else "", "yes" if u.disabled else "")
    console.print(table)
