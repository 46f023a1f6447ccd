"""`packhouse repo ...`: create, update, list, grant, revoke."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from packhouse.cli.common import ConfigOption, DataOption, console, fail, open_services
from packhouse.errors import PackhouseError
from packhouse.types import Action, Format, RepoKind
from packhouse.units import parse_duration, parse_moment

if TYPE_CHECKING:
    from packhouse.db.repository_store import Repository
    from packhouse.services.repos import RepoSettings

app = typer.Typer(
    help="Create and list repositories, and grant access to them.",
    epilog="Example: packhouse repo create team --format pypi && packhouse repo grant team alice"
    " upload",
    no_args_is_help=True,
)

FormatOption = Annotated[Format, typer.Option("--format", "-f", help="pypi or conda.")]


def _names(values: list[str] | None) -> list[str] | None:
    """Names given as repeated options and/or comma-separated lists."""
    if values is None:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def _secret(file: Path | None, env: str | None) -> str | None:
    """The upstream password or token, from a file or an environment variable (never from
    the command line, where it would be seen in the process list and shell history)."""
    if file is not None and env is not None:
        fail("give the upstream secret once: --upstream-password-file or --upstream-password-env")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read the upstream secret from {file}: {exc.__class__.__name__}")
        if not text:
            fail(f"the upstream secret file {file} is empty")
        return text
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            fail(f"the environment variable {env} is not set or empty")
        return value
    return None


def _settings(
    *,
    bases: list[str] | None,
    description: str | None,
    upstream: str | None,
    upstream_user: str | None,
    password_file: Path | None,
    password_env: str | None,
    ttl: str | None,
    offline: bool | None,
    allow_upstream: list[str] | None,
    min_age: str | None,
    exclude_newer: str | None,
    cooldown_exempt: list[str] | None,
) -> RepoSettings:
    from packhouse.services.repos import RepoSettings

    clear: set[str] = set()

    def cleared(value: str | None, field: str) -> str | None:
        if value is not None and value.strip().lower() in ("none", "off", ""):
            clear.add(field)
            return None
        return value

    ttl, min_age, exclude_newer = (
        cleared(ttl, "ttl"),
        cleared(min_age, "min_age"),
        cleared(exclude_newer, "exclude_newer"),
    )
    try:
        return RepoSettings(
            bases=_names(bases),
            description=description,
            upstream_url=upstream,
            upstream_user=upstream_user,
            upstream_password=_secret(password_file, password_env),
            ttl=int(parse_duration(ttl).total_seconds()) if ttl is not None else None,
            offline=offline,
            allow_upstream=_names(allow_upstream),
            min_age=int(parse_duration(min_age).total_seconds()) if min_age is not None else None,
            exclude_newer=parse_moment(exclude_newer) if exclude_newer is not None else None,
            cooldown_exempt=_names(cooldown_exempt),
            clear=frozenset(clear),
        )
    except PackhouseError as exc:
        fail(exc.message, 2)


BasesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--bases",
        "--base",
        help="Base repositories in order: a,b or repeated. Reading this reads them too.",
    ),
]
UpstreamOption = Annotated[
    str | None,
    typer.Option(
        "--upstream",
        help="Make a proxy of this index or channel: https://pypi.org/simple/ or"
        " https://conda.anaconda.org/conda-forge.",
    ),
]
UpstreamUserOption = Annotated[
    str | None, typer.Option("--upstream-user", help="User name for the upstream.")
]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option("--upstream-password-file", help="A file holding the upstream password/token."),
]
PasswordEnvOption = Annotated[
    str | None,
    typer.Option(
        "--upstream-password-env", help="An environment variable holding the upstream secret."
    ),
]
TtlOption = Annotated[
    str | None,
    typer.Option("--ttl", help="Trust fetched index pages this long (10m, 1h; none: the setting)."),
]
OfflineOption = Annotated[
    bool | None,
    typer.Option("--offline/--online", help="Serve only what is cached.", show_default=False),
]
AllowUpstreamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-upstream",
        help="Names hosted here that upstreams may still add files to (a,b). Empty to clear.",
    ),
]
MinAgeOption = Annotated[
    str | None,
    typer.Option("--min-age", help="Hide upstream files younger than this (3d, 12h; none)."),
]
ExcludeNewerOption = Annotated[
    str | None,
    typer.Option(
        "--exclude-newer", help="Hide upstream files newer than this date (2026-06-30; none)."
    ),
]
ExemptOption = Annotated[
    list[str] | None,
    typer.Option("--cooldown-exempt", help="Names the cooldown does not apply to (a,b)."),
]


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, '.', '_', '-'.")],
    fmt: FormatOption = Format.PYPI,
    bases: BasesOption = None,
    upstream: UpstreamOption = None,
    upstream_user: UpstreamUserOption = None,
    upstream_password_file: PasswordFileOption = None,
    upstream_password_env: PasswordEnvOption = None,
    ttl: TtlOption = None,
    offline: OfflineOption = None,
    allow_upstream: AllowUpstreamOption = None,
    min_age: MinAgeOption = None,
    exclude_newer: ExcludeNewerOption = None,
    cooldown_exempt: ExemptOption = None,
    public: Annotated[bool, typer.Option(help="Let anyone read it, without credentials.")] = False,
    description: Annotated[str, typer.Option(help="A line about what it holds.")] = "",
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a hosted repository, or a proxy with --upstream (private unless --public).

    Examples:

      packhouse repo create team --format pypi

      packhouse repo create pypi-org --upstream https://pypi.org/simple/ --min-age 3d

      packhouse repo create all --format pypi --bases team,pypi-org

      packhouse repo create forge --format conda --upstream https://conda.anaconda.org/conda-forge
    """
    from packhouse.auth.redact import redact_url
    from packhouse.services.repos import create_repository

    settings = _settings(
        bases=None,
        description=None,
        upstream=None,
        upstream_user=upstream_user,
        password_file=upstream_password_file,
        password_env=upstream_password_env,
        ttl=ttl,
        offline=offline,
        allow_upstream=allow_upstream,
        min_age=min_age,
        exclude_newer=exclude_newer,
        cooldown_exempt=cooldown_exempt,
    )
    with open_services(data, config) as svc:
        repo = create_repository(
            svc.ctx,
            actor="cli",
            name=name,
            fmt=fmt,
            kind=RepoKind.PROXY if upstream else RepoKind.HOSTED,
            bases=_names(bases) or (),
            public=public,
            description=description,
            upstream_url=upstream,
            settings=settings,
        )
        url = svc.ctx.settings.base_url
        where = (
            f"{url}/pypi/{repo.name}/simple/" if fmt is Format.PYPI else f"{url}/conda/{repo.name}/"
        )
        what = f"proxy of {redact_url(upstream)}" if upstream else "repository"
        console.print(f"created {fmt} {what} [bold]{repo.name}[/] at {where}", highlight=False)


@app.command("update")
def update(
    name: str,
    fmt: FormatOption = Format.PYPI,
    bases: BasesOption = None,
    upstream: UpstreamOption = None,
    upstream_user: UpstreamUserOption = None,
    upstream_password_file: PasswordFileOption = None,
    upstream_password_env: PasswordEnvOption = None,
    no_upstream_auth: Annotated[
        bool, typer.Option("--no-upstream-auth", help="Forget the upstream credentials.")
    ] = False,
    ttl: TtlOption = None,
    offline: OfflineOption = None,
    allow_upstream: AllowUpstreamOption = None,
    min_age: MinAgeOption = None,
    exclude_newer: ExcludeNewerOption = None,
    cooldown_exempt: ExemptOption = None,
    description: Annotated[str | None, typer.Option(help="A line about what it holds.")] = None,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Change a repository's bases, upstream, cooldown or allow list.

    Examples:

      packhouse repo update all --bases team,pypi-org

      packhouse repo update all --allow-upstream requests,urllib3

      packhouse repo update pypi-org --min-age 7d --cooldown-exempt certifi

      packhouse repo update pypi-org --exclude-newer 2026-06-30

      packhouse repo update pypi-org --min-age none --ttl 10m
    """
    from packhouse.services.repos import update_repository

    settings = _settings(
        bases=bases,
        description=description,
        upstream=upstream,
        upstream_user=upstream_user,
        password_file=upstream_password_file,
        password_env=upstream_password_env,
        ttl=ttl,
        offline=offline,
        allow_upstream=allow_upstream,
        min_age=min_age,
        exclude_newer=exclude_newer,
        cooldown_exempt=cooldown_exempt,
    )
    if no_upstream_auth:
        settings = replace(settings, clear=settings.clear | {"upstream_auth"})
    with open_services(data, config) as svc:
        repo = update_repository(svc.ctx, actor="cli", fmt=fmt, name=name, settings=settings)
        console.print(f"updated {repo.qualified_name}", highlight=False)
        for line in describe(repo):
            console.print(f"  {line}", highlight=False)


def describe(repo: Repository) -> list[str]:
    """A repository's settings, one a line, without the upstream secret."""
    from packhouse.auth.redact import redact_url

    lines = [f"kind: {repo.kind}"]
    if repo.bases:
        lines.append(f"bases: {', '.join(repo.bases)}")
    if repo.upstream_url:
        auth = " (with credentials)" if repo.proxy.password else ""
        lines.append(f"upstream: {redact_url(repo.upstream_url)}{auth}")
        if repo.proxy.ttl is not None:
            lines.append(f"ttl: {repo.proxy.ttl}s")
        if repo.proxy.offline:
            lines.append("offline: yes")
    if repo.allow_upstream:
        lines.append(f"allow upstream: {', '.join(repo.allow_upstream)}")
    if repo.cooldown.min_age is not None:
        lines.append(f"min age: {repo.cooldown.min_age}s")
    if repo.cooldown.exclude_newer is not None:
        lines.append(f"exclude newer: {repo.cooldown.exclude_newer.isoformat()}")
    if repo.cooldown.exempt:
        lines.append(f"cooldown exempt: {', '.join(repo.cooldown.exempt)}")
    return lines


@app.command("bases")
def bases_command(
    name: str,
    base: Annotated[list[str], typer.Option("--base", help="Base repositories, in order.")],
    fmt: FormatOption = Format.PYPI,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Set the ordered bases a repository reads through (also: repo update --bases).

    Example:

      packhouse repo bases all --base team --base main
    """
    from packhouse.services.repos import set_bases

    with open_services(data, config) as svc:
        set_bases(svc.ctx, actor="cli", fmt=fmt, name=name, bases=_names(base) or [])
        console.print(f"{name} now reads through: {', '.join(base)}")


@app.command("list")
def list_repos(data: DataOption = None, config: ConfigOption = None) -> None:
    """List repositories.

    Example:

      packhouse repo list
    """
    from rich.table import Table

    from packhouse.auth.redact import redact_url

    with open_services(data, config) as svc:
        table = Table("format", "name", "kind", "bases / upstream", "public", "last serial")
        for r in svc.catalog.all():
            table.add_row(
                r.format,
                r.name,
                r.kind,
                redact_url(r.upstream_url) if r.upstream_url else ", ".join(r.bases),
                "yes" if svc.access.is_public(r.id) else "no",
                str(r.last_serial),
            )
        console.print(table)


GrantFormatOption = Annotated[
    Format | None,
    typer.Option(
        "--format",
        "-f",
        help="Only the repository of this format (same as naming it pypi/NAME or conda/NAME).",
        show_default=False,
    ),
]


@app.command("grant")
def grant(
    name: Annotated[
        str,
        typer.Argument(
            help="pypi/NAME or conda/NAME names one repository; a bare NAME every repository"
            " so named (pypi/main and conda/main)."
        ),
    ],
    principal: Annotated[
        str, typer.Argument(help="A user, a group (with --group), :authenticated: or :anonymous:")
    ],
    action: Annotated[Action, typer.Argument(help="read, upload or admin")],
    fmt: GrantFormatOption = None,
    group: Annotated[bool, typer.Option("--group", help="PRINCIPAL names a group.")] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Grant an action on repositories (replacing what that principal had there). A bare
    name means every repository of that name, as a token's --repo does.

    Examples:

      packhouse repo grant pypi/main alice upload

      packhouse repo grant main ci upload      # pypi/main and conda/main

      packhouse repo grant main :anonymous: read

      packhouse repo grant main developers read --group
    """
    reached = _set(data, config, fmt, name, principal, action, group)
    console.print(f"granted {action} on {reached} to {principal}", highlight=False)


@app.command("revoke")
def revoke(
    name: Annotated[
        str,
        typer.Argument(
            help="pypi/NAME or conda/NAME names one repository; a bare NAME every repository"
            " so named."
        ),
    ],
    principal: str,
    fmt: GrantFormatOption = None,
    group: Annotated[bool, typer.Option("--group", help="PRINCIPAL names a group.")] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Take away whatever a principal was granted on repositories (a bare name: every
    repository so named).

    Example:

      packhouse repo revoke main :anonymous:
    """
    reached = _set(data, config, fmt, name, principal, None, group)
    console.print(f"revoked {principal}'s access to {reached}", highlight=False)


def _set(
    data: DataOption,
    config: ConfigOption,
    fmt: Format | None,
    name: str,
    principal: str,
    action: Action | None,
    group: bool,
) -> str:
    """Set the permission on every repository `name` reaches; returns them, comma-separated."""
    from packhouse.errors import RepositoryNotFound
    from packhouse.services.repos import set_permission

    with open_services(data, config) as svc:
        repos = svc.catalog.named(name, fmt)
        if not repos:
            raise RepositoryNotFound(
                f"there is no repository {name!r}"
                + (f" of format {fmt}" if fmt and "/" not in name else "")
                + ": name it as NAME or FORMAT/NAME (e.g. main or pypi/main);"
                " `packhouse repo list` shows them"
            )
        reached = []
        for repo in repos:
            before = set_permission(
                svc.ctx,
                actor="cli",
                fmt=repo.format,
                name=repo.name,
                principal=principal,
                action=action,
                kind="group" if group else None,
            )
            # say what a grant replaced, so lowering upload to read is never a surprise
            was = f" (was {before})" if before and before != (action and action.value) else ""
            reached.append(repo.qualified_name + was)
    return ", ".join(reached)
