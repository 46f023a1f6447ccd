"""`packhouse oidc ...`: trusted publishing's issuers and publishers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from packhouse.cli.common import ConfigOption, DataOption, console, fail, open_services

if TYPE_CHECKING:
    from packhouse.db.oidc_store import Issuer, Publisher

app = typer.Typer(
    help="Trusted publishing: CI identity tokens (OIDC) exchanged for short-lived upload tokens.",
    epilog="Example: packhouse oidc issuer add github --url"
    " https://token.actions.githubusercontent.com",
    no_args_is_help=True,
)
issuer_app = typer.Typer(help="OIDC issuers whose identity tokens are taken.", no_args_is_help=True)
publisher_app = typer.Typer(
    help="Publishers: the claims an identity token must carry to upload to a repository.",
    no_args_is_help=True,
)
app.add_typer(issuer_app, name="issuer")
app.add_typer(publisher_app, name="publisher")

JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object a line.")]


@issuer_app.command("add")
def issuer_add(
    name: Annotated[str, typer.Argument(help="A short name: github, gitlab, corp.")],
    url: Annotated[
        str, typer.Option("--url", help="The issuer URL, exactly as its tokens' 'iss' claim.")
    ],
    jwks_file: Annotated[
        Path | None,
        typer.Option(
            "--jwks-file",
            help="The issuer's keys (a JWKS JSON file), for sites that cannot reach it; else"
            " they are read from URL/.well-known/openid-configuration's jwks_uri.",
            show_default=False,
        ),
    ] = None,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Register an OIDC issuer. Its keys are fetched now (or read from --jwks-file) so a
    wrong URL is refused at once.

    Examples:

      packhouse oidc issuer add github --url https://token.actions.githubusercontent.com

      packhouse oidc issuer add gitlab --url https://gitlab.com

      packhouse oidc issuer add corp --url https://sso.example.com --jwks-file keys.json
    """
    jwks: dict[str, Any] | None = None
    if jwks_file is not None:
        try:
            loaded = json.loads(jwks_file.read_text(encoding="utf-8"))
        except OSError as exc:
            fail(f"cannot read {jwks_file}: {exc.strerror or exc}")
        except ValueError:
            fail(f'{jwks_file} is not JSON: it should hold a JWKS, {{"keys": [...]}}')
        if not isinstance(loaded, dict):
            fail(f'{jwks_file} should hold a JWKS object, {{"keys": [...]}}')
        jwks = loaded
    with open_services(data, config) as svc:
        issuer = svc.oidc.add_issuer(actor="cli", name=name, url=url, jwks=jwks)
        audience = svc.oidc.audience()
    console.print(
        f"added the issuer [bold]{issuer.name}[/] ({issuer.url}), keys from"
        f" {'the file' if jwks else 'its discovery document'}; identity tokens must name the"
        f" audience {audience!r}",
        highlight=False,
    )


@issuer_app.command("list")
def issuer_list(
    as_json: JsonOption = False, data: DataOption = None, config: ConfigOption = None
) -> None:
    """List the registered issuers."""
    with open_services(data, config) as svc:
        found = svc.oidc.list_issuers()
    if as_json:
        for i in found:
            typer.echo(json.dumps(issuer_dict(i)))
        return
    from rich.table import Table

    table = Table("name", "url", "keys", "added")
    for i in found:
        table.add_row(i.name, i.url, "file" if i.jwks else "discovery", f"{i.created_at:%Y-%m-%d}")
    console.print(table)


@issuer_app.command("remove")
def issuer_remove(
    name: Annotated[str, typer.Argument(help="From `packhouse oidc issuer list`.")],
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove an issuer, its publishers and the tokens minted for them."""
    with open_services(data, config) as svc:
        svc.oidc.remove_issuer(actor="cli", name=name)
    console.print(f"removed the issuer {name} and its publishers", highlight=False)


@publisher_app.command("add")
def publisher_add(
    repo: Annotated[str, typer.Option("--repo", "-r", help="FORMAT/NAME, e.g. pypi/main.")],
    issuer: Annotated[str, typer.Option("--issuer", "-i", help="A registered issuer's name.")],
    claim: Annotated[
        list[str],
        typer.Option(
            "--claim",
            "-c",
            help="NAME=VALUE an identity token must carry; repeat for more (all must match).",
        ),
    ],
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Let CI jobs whose identity tokens carry these claims upload to a repository.

    Examples:

      packhouse oidc publisher add --repo pypi/main --issuer github
        --claim repository=acme/app --claim environment=release

      packhouse oidc publisher add --repo conda/main --issuer gitlab
        --claim project_path=acme/app --claim ref=main
    """
    from packhouse.services.oidc import parse_claims

    with open_services(data, config) as svc:
        made = svc.oidc.add_publisher(
            actor="cli",
            repository=svc.oidc.repository(repo),
            issuer=issuer,
            claims=parse_claims(claim),
        )
    console.print(
        f"added publisher {made.id}: tokens of {made.issuer_name} with {_claims(made)} may"
        f" upload to {made.repository}",
        highlight=False,
    )


@publisher_app.command("list")
def publisher_list(
    repo: Annotated[
        str | None, typer.Option("--repo", "-r", help="Only this repository's.")
    ] = None,
    as_json: JsonOption = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """List publishers."""
    with open_services(data, config) as svc:
        found = svc.oidc.list_publishers(None if repo is None else svc.oidc.repository(repo))
    if as_json:
        for p in found:
            typer.echo(json.dumps(publisher_dict(p)))
        return
    from rich.table import Table

    table = Table("id", "repository", "issuer", "claims", "added")
    for p in found:
        table.add_row(
            str(p.id), p.repository, p.issuer_name, _claims(p), f"{p.created_at:%Y-%m-%d}"
        )
    console.print(table)


@publisher_app.command("remove")
def publisher_remove(
    publisher_id: Annotated[
        int, typer.Argument(metavar="ID", help="From `packhouse oidc publisher list`.")
    ],
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove a publisher; tokens minted for it stop working at once."""
    with open_services(data, config) as svc:
        gone = svc.oidc.remove_publisher(actor="cli", publisher_id=publisher_id)
    console.print(f"removed publisher {gone.id} of {gone.repository}", highlight=False)


def _claims(p: Publisher) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.claims.items())


def issuer_dict(i: Issuer) -> dict[str, object]:
    return {
        "name": i.name,
        "url": i.url,
        "keys": "file" if i.jwks else "discovery",
        "created_at": i.created_at.isoformat(),
    }


def publisher_dict(p: Publisher) -> dict[str, object]:
    return {
        "id": p.id,
        "repository": p.repository,
        "issuer": p.issuer_name,
        "claims": dict(p.claims),
        "created_at": p.created_at.isoformat(),
    }
