"""`packhouse yank|unyank|delete`, `packhouse db upgrade`, `packhouse fsck`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from packhouse.cli.common import ConfigOption, DataOption, console, open_services, settings_from
from packhouse.types import Format

if TYPE_CHECKING:
    from packhouse.services import manage
    from packhouse.services.context import Context

RepoArg = Annotated[str, typer.Argument(help="Repository name.")]
ProjectArg = Annotated[str, typer.Argument(help="Project (PyPI) or package (conda) name.")]
VersionArg = Annotated[str | None, typer.Argument(help="The version (all its files).")]
FileOption = Annotated[str | None, typer.Option("--file", help="One file, by its filename.")]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="pypi or conda.")]


def _target(project: str, version: str | None, filename: str | None) -> manage.Target:
    from packhouse.services import manage

    if (version is None) == (filename is None):
        raise typer.BadParameter("name either a VERSION or a --file, not both or neither")
    return manage.Target(project, version, filename)


def yank(
    repo: RepoArg,
    project: ProjectArg,
    version: VersionArg = None,
    file: FileOption = None,
    reason: Annotated[str | None, typer.Option(help="Shown to installers (PEP 592).")] = None,
    fmt: FormatOption = Format.PYPI,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Yank a version or a file: installers skip it unless pinned exactly (PEP 592).

    Examples:

      packhouse yank main mypkg 1.0.2 --reason "corrupts data on upgrade"

      packhouse yank main mypkg --file mypkg-1.0.2-py3-none-any.whl
    """
    from packhouse.services import manage

    target = _target(project, version, file)
    with open_services(data, config) as svc:
        r = svc.catalog.get(fmt, repo)
        names = manage.set_yanked(svc.ctx, r, target, actor="cli", yanked=True, reason=reason)
        console.print("yanked " + ", ".join(names), highlight=False)


def unyank(
    repo: RepoArg,
    project: ProjectArg,
    version: VersionArg = None,
    file: FileOption = None,
    fmt: FormatOption = Format.PYPI,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Undo a yank.

    Example:

      packhouse unyank main mypkg 1.0.2
    """
    from packhouse.services import manage

    target = _target(project, version, file)
    with open_services(data, config) as svc:
        r = svc.catalog.get(fmt, repo)
        names = manage.set_yanked(svc.ctx, r, target, actor="cli", yanked=False)
        console.print("unyanked " + ", ".join(names), highlight=False)


def delete(
    repo: RepoArg,
    project: ProjectArg,
    version: VersionArg = None,
    file: FileOption = None,
    fmt: FormatOption = Format.PYPI,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete a version or a file. Its filename can never be uploaded again.

    Examples:

      packhouse delete main mypkg 1.0.2 --yes

      packhouse delete main mypkg --file mypkg-1.0.2.tar.gz
    """
    from packhouse.services import manage

    target = _target(project, version, file)
    what = file or f"{project} {version}"
    if not yes and not typer.confirm(f"Delete {what} from {repo}? This can't be undone"):
        raise typer.Exit(1)
    with open_services(data, config) as svc:
        r = svc.catalog.get(fmt, repo)
        names = manage.delete(svc.ctx, r, target, actor="cli")
        console.print("deleted " + ", ".join(names), highlight=False)


db_app = typer.Typer(
    help="Database schema.",
    epilog="Example: packhouse db upgrade --data /srv/packhouse",
    no_args_is_help=True,
)


@db_app.command("upgrade")
def db_upgrade(data: DataOption = None, config: ConfigOption = None) -> None:
    """Apply the schema migrations (the server also does this when it starts).

    Example:

      packhouse db upgrade --data /srv/packhouse
    """
    from packhouse.db.engine import Database
    from packhouse.db.migrate import current_revision

    settings = settings_from(data, config)
    settings.data.mkdir(parents=True, exist_ok=True)
    db = Database(settings.sqlalchemy_url)
    try:
        db.upgrade()
        console.print(f"database at revision {current_revision(db)}")
    finally:
        db.dispose()


def fsck(
    remove: Annotated[
        bool,
        typer.Option(
            "--remove",
            help="Remove blobs that no artifact references, and temporary files that no"
            " process uses (left by a server killed mid-upload).",
        ),
    ] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Also hash every blob rows need, mend what can be derived again (PEP 658"
            " files from their wheels, proxies' cached copies fetched again) and list what"
            " cannot; implies --remove.",
        ),
    ] = False,
    grace_minutes: Annotated[
        int,
        typer.Option(
            help="Leave unreferenced blobs younger than this: an upload may be committing them.",
            min=0,
        ),
    ] = 60,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Check that every artifact's blob is stored, and report unreferenced blobs and
    abandoned temporary files.

    Safe while the server runs: blobs are listed before the references are read, young
    blobs are left alone, each removal re-checks the database under its write lock, and a
    temporary file is abandoned only when no process holds its lock.

    Examples:

      packhouse fsck

      packhouse fsck --remove

      packhouse fsck --repair
    """
    from packhouse.db import artifact_store
    from packhouse.services import artifacts

    remove = remove or repair
    with open_services(data, config) as svc:
        unmendable = _repair(svc.ctx) if repair else 0
        blobs = list(svc.ctx.blobs.iter_blobs())
        with svc.ctx.db.read() as conn:
            wanted = artifact_store.referenced_sha256s(conn)
        stored = {b.sha256 for b in blobs}
        missing = sorted(wanted - stored)
        cutoff = datetime.now(UTC) - timedelta(minutes=grace_minutes)
        extra = sorted(b.sha256 for b in blobs if b.sha256 not in wanted)
        old = {
            b.sha256
            for b in blobs
            if b.sha256 not in wanted and (b.modified is None or b.modified < cutoff)
        }
        dropped = set(artifacts.drop_unreferenced(svc.ctx, old)) if remove else set()
        for sha in missing:
            console.print(f"[red]missing[/] blob {sha}")
        for sha in extra:
            note = " (removed)" if sha in dropped else "" if sha in old else " (young, kept)"
            console.print(f"unreferenced blob {sha}{note}")
        left = artifacts.abandoned_temp_files(svc.ctx, remove=remove)
        for path in left:
            note = " (removed)" if remove else ""
            console.print(f"abandoned temporary file {path}{note}", highlight=False)
        console.print(
            f"{len(wanted)} referenced, {len(missing)} missing, {len(extra)} unreferenced,"
            f" {len(dropped)} removed, {len(left)} abandoned temporary files"
            + (" removed" if remove and left else "")
        )
        if missing or unmendable:
            raise typer.Exit(1)


def _repair(ctx: Context) -> int:
    """fsck --repair's own part (services/repair.py): says what it mended and what it
    cannot; returns how many it cannot."""
    from packhouse.services.repair import repair

    report = repair(ctx)
    for line in report.mended:
        console.print(f"[green]mended[/] {line}", highlight=False)
    for line in report.unmendable:
        console.print(f"[red]cannot mend[/] {line}", highlight=False)
    console.print(
        f"{report.checked} blobs hashed, {len(report.mended)} mended,"
        f" {len(report.unmendable)} cannot be mended",
        highlight=False,
    )
    return len(report.unmendable)
