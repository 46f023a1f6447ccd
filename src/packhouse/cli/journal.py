"""`packhouse journal`: who did what, when."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from packhouse.cli.common import ConfigOption, DataOption, console, open_services


def journal(
    repo: Annotated[str | None, typer.Option("--repo", "-r", help="Only this repository.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only changes by this user.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action (upload, token.create, perm.grant...).")
    ] = None,
    project: Annotated[str | None, typer.Option(help="Only this project or package.")] = None,
    since: Annotated[
        int | None, typer.Option(min=0, max=2**63 - 1, help="Only serials above this one.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many entries.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Show the journal, newest first.

    Examples:

      packhouse journal --repo main --limit 20

      packhouse journal --actor alice --action upload --json
    """
    from rich.table import Table

    from packhouse.services import audit

    with open_services(data, config) as svc:
        found = audit.journal(
            svc.ctx,
            repository=repo,
            actor=actor,
            action=action,
            project=project,
            since=since,
            limit=limit,
        )
    if as_json:
        for e in found:
            typer.echo(
                json.dumps(
                    {
                        "serial": e.serial,
                        "time": e.time.isoformat(),
                        "actor": e.actor,
                        "action": e.action,
                        "repository": e.repository,
                        "project": e.project,
                        "filename": e.filename,
                        "detail": e.detail,
                    }
                )
            )
        return
    table = Table("serial", "time (UTC)", "actor", "action", "repository", "what")
    for e in found:
        what = " ".join(x for x in (e.project, e.filename) if x)
        if e.detail:
            what = (what + " " if what else "") + json.dumps(e.detail, separators=(",", ":"))
        table.add_row(
            str(e.serial),
            f"{e.time:%Y-%m-%d %H:%M:%S}",
            e.actor,
            e.action,
            e.repository or "",
            what,
        )
    console.print(table)
