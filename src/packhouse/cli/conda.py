"""`packhouse conda ...`: commands for conda channels (mounted by cli/main.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from packhouse.errors import PackhouseError
from packhouse.services.conda_index import IndexOptions, index_channel

__all__ = ["app"]

app = typer.Typer(help="Work with conda channels.", no_args_is_help=True)

_EPILOG = """\
Examples:

  packhouse conda index ./channel

  packhouse conda index ./channel --bz2 --current-repodata --run-exports

  packhouse conda index ./channel --patch conda-forge-repodata-patches-20180828-0.tar.bz2

  packhouse conda index ./channel --no-shards --jobs 4
"""


@app.callback()
def _main() -> None:
    """Work with conda channels."""


@app.command("index", epilog=_EPILOG)
def index(
    directory: Annotated[
        Path, typer.Argument(help="The channel directory, holding noarch/ and other subdirs.")
    ],
    zst: Annotated[bool, typer.Option("--zst/--no-zst", help="Write repodata.json.zst.")] = True,
    bz2: Annotated[bool, typer.Option("--bz2", help="Also write repodata.json.bz2.")] = False,
    shards: Annotated[
        bool, typer.Option("--shards/--no-shards", help="Write CEP 16 sharded repodata.")
    ] = True,
    current: Annotated[
        bool, typer.Option("--current-repodata", help="Write current_repodata.json.")
    ] = False,
    channeldata: Annotated[
        bool,
        typer.Option("--channeldata/--no-channeldata", help="Write channeldata.json at the root."),
    ] = True,
    run_exports: Annotated[
        bool, typer.Option("--run-exports", help="Write run_exports.json per subdir.")
    ] = False,
    patch: Annotated[
        Path | None,
        typer.Option(
            "--patch",
            help="A patch_instructions.json, or a repodata-patches package holding"
            " <subdir>/patch_instructions.json.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Processes reading packages (default: CPUs)."),
    ] = None,
) -> None:
    """Index a conda channel directory in place, like `conda index`, incrementally."""
    console = Console(stderr=True)
    options = IndexOptions(
        zst=zst,
        bz2=bz2,
        shards=shards,
        current_repodata=current,
        channeldata=channeldata,
        run_exports=run_exports,
        patch=patch,
        jobs=jobs,
    )
    if not directory.is_dir():
        console.print(f"[red]error:[/] {directory} is not a directory")
        raise typer.Exit(2)
    try:
        if console.is_terminal:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("reading packages", total=None)
                report = index_channel(
                    directory,
                    options,
                    lambda done, total: bar.update(task, completed=done, total=total),
                )
        else:
            report = index_channel(directory, options)
    except (PackhouseError, OSError) as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from error
    for path, reason in report.failures:
        console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False, soft_wrap=True)
    out = Console()
    out.print(
        f"indexed {report.packages} packages in {len(report.subdirs)} subdirs"
        f" ({', '.join(report.subdirs)}): {report.read} read, {report.removed} removed,"
        f" {len(report.failures)} skipped, {len(report.written)} files written",
        highlight=False,
        soft_wrap=True,
    )
