"""`packhouse token ...`: create, list, revoke API tokens."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from packhouse.cli.common import ConfigOption, DataOption, console, err_console, open_services
from packhouse.types import Action

if TYPE_CHECKING:
    from packhouse.db.token_store import Token

app = typer.Typer(
    help="Create, list and revoke API tokens.",
    epilog="Example: packhouse token create --user ci --repo main --scope upload --expires 90d",
    no_args_is_help=True,
)


@app.command("create")
def create(
    user: Annotated[str, typer.Option("--user", "-u", help="The token's owner.")],
    repo: Annotated[
        list[str] | None,
        typer.Option(
            "--repo",
            "-r",
            help="A repository the token may reach: NAME or FORMAT/NAME (pypi/main);"
            " repeat for more. Default: every repository the owner can reach.",
        ),
    ] = None,
    scope: Annotated[
        list[Action] | None,
        typer.Option("--scope", "-s", help="read, upload or admin; repeat for more. Default read."),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            help="30d, 12h, 90m, 2w, or a date such as 2026-12-31 (valid through it);"
            " at most ten years ahead."
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", "-n", help="A label to recognise it by.")] = "",
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a token and print its secret once. Its scope cannot exceed what the owner holds.

    Examples:

      packhouse token create --user ci --repo main --scope upload --expires 90d --name ci

      packhouse token create --user alice --repo conda/main --name laptop
    """
    from packhouse.services import accounts

    with open_services(data, config) as svc:
        made = accounts.create_token(
            svc.ctx,
            svc.access,
            svc.catalog,
            actor="cli",
            owner=user,
            name=name,
            repositories=repo or None,
            actions=scope or [Action.READ],
            expires=expires,
        )
        t = made.token
        # what each --repo reaches now: a bare name is every repository so named
        reached = [
            entry if "/" in entry else f"{entry} ({', '.join(r.qualified_name for r in found)})"
            for entry in t.repositories or ()
            for found in [svc.catalog.named(entry)]
        ]
    err_console.print(
        f"created token {t.id} [bold]{t.name}[/] for {t.user_name}: "
        f"{', '.join(a.value for a in sorted(t.actions, key=list(Action).index))} on "
        f"{', '.join(reached) if t.repositories else 'every repository they can reach'}"
        f"{f', expires {_when(t.expires_at)}' if t.expires_at else ''}."
        "\nThe secret is shown once; store it now:",
        highlight=False,
    )
    # the secret alone on stdout, so `TOKEN=$(packhouse token create ...)` works
    typer.echo(made.secret)


@app.command("list")
def list_tokens(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's.")] = None,
    revoked: Annotated[bool, typer.Option(help="Include revoked tokens.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """List tokens (never their secrets).

    Examples:

      packhouse token list --user ci

      packhouse token list --json
    """
    from rich.table import Table

    from packhouse.services import accounts

    with open_services(data, config) as svc:
        found = accounts.list_tokens(svc.ctx, user, revoked=revoked)
    if as_json:
        for t in found:
            typer.echo(json.dumps(_as_dict(t)))
        return
    table = Table("id", "user", "name", "starts", "repositories", "actions", "expires", "last used")
    if revoked:
        table.add_column("revoked")
    for t in found:
        row = [
            str(t.id),
            t.user_name,
            t.name,
            t.shown + "…",
            ", ".join(t.repositories) if t.repositories is not None else "(all)",
            ", ".join(a.value for a in sorted(t.actions, key=list(Action).index)),
            _when(t.expires_at) if t.expires_at else "never",
            _when(t.last_used_at) if t.last_used_at else "never",
        ]
        if revoked:
            row.append("yes" if t.revoked else "")
        table.add_row(*row)
    console.print(table)


@app.command("revoke")
def revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="From `packhouse token list`.")],
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a token: it stops working at once, in every server process.

    Example:

      packhouse token revoke 7
    """
    from packhouse.services import accounts

    with open_services(data, config) as svc:
        t = accounts.revoke_token(svc.ctx, actor="cli", token_id=token_id)
    console.print(f"revoked token {t.id} ({t.name}) of {t.user_name}", highlight=False)


def _as_dict(t: Token) -> dict[str, object]:
    return {
        "id": t.id,
        "user": t.user_name,
        "name": t.name,
        "shown": t.shown,
        "repositories": None if t.repositories is None else list(t.repositories),
        "actions": [a.value for a in sorted(t.actions, key=list(Action).index)],
        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        "created_at": t.created_at.isoformat(),
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
        "revoked": t.revoked,
    }


def _when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"
