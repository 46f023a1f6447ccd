"""`packhouse promote`: copy a release from one repository to another."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from packhouse.cli.common import ConfigOption, DataOption, console, open_services
from packhouse.types import Format

if TYPE_CHECKING:
    from packhouse.services.promote import Promotion


def promote(
    name: Annotated[str, typer.Argument(help="Project (PyPI) or package (conda) name.")],
    version: Annotated[str, typer.Argument(help="The version: every live file of it.")],
    source: Annotated[str, typer.Option("--from", help="The repository to copy from.")],
    target: Annotated[str, typer.Option("--to", help="The hosted repository to copy to.")],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="pypi or conda.")] = Format.PYPI,
    subdir: Annotated[
        str | None, typer.Option("--subdir", help="conda: only the files of this subdir.")
    ] = None,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Copy a release's files to another repository: same filenames, same bytes (shared,
    not copied), metadata and yank state kept, one journal entry per file. Files already
    there with the same bytes are skipped; any file of that name with other bytes (or
    deleted there) refuses the whole promotion, and nothing is copied.

    Examples:

      packhouse promote --from dev --to release mypkg 1.2.0

      packhouse promote -f conda --from dev --to release mypkg 1.2.0 --subdir linux-64
    """
    from packhouse.services.promote import Release
    from packhouse.services.promote import promote as promote_release

    with open_services(data, config) as svc:
        done = promote_release(
            svc.ctx,
            svc.catalog.get(fmt, source),
            svc.catalog.get(fmt, target),
            Release(name, version, subdir),
            actor="cli",
        )
        report(done)


def report(done: Promotion) -> None:
    for f in done.copied:
        console.print(f"promoted {_where(f.subdir)}{f.filename}", highlight=False)
    for f in done.skipped:
        console.print(
            f"skipped {_where(f.subdir)}{f.filename}: already in {done.target}, same bytes",
            highlight=False,
        )
    console.print(
        f"{done.project} {done.version}: {len(done.copied)} promoted from {done.source} to"
        f" {done.target}, {len(done.skipped)} already there",
        highlight=False,
    )


def _where(subdir: str | None) -> str:
    return f"{subdir}/" if subdir else ""
