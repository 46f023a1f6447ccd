"""`packhouse pypi index DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from packhouse.cli.common import console, err_console, fail

app = typer.Typer(
    help="PyPI-style trees: index a directory of wheels and sdists.",
    epilog="Example: packhouse pypi index ./wheels && pip install --index-url"
    " file://$PWD/wheels/simple/ mypkg",
    no_args_is_help=True,
)


@app.command("index")
def index(
    directory: Annotated[Path, typer.Argument(help="The directory holding the wheels and sdists.")],
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List what was written.")
    ] = False,
) -> None:
    """Write PEP 503 / PEP 691 pages and PEP 658 metadata files for the wheels and sdists
    in DIR (incremental: only new or changed files are read).

    Then: pip install --index-url file:///path/to/DIR/simple/ NAME (uv the same), or serve
    DIR with any static web server.

    Example:

      packhouse pypi index ./wheels
    """
    from packhouse.cli.transfer import progress_bar
    from packhouse.errors import PackhouseError
    from packhouse.services.pypi_index import index_directory

    try:
        with progress_bar() as progress:
            report = index_directory(
                directory, lambda done, total: progress("reading files", done, total)
            )
    except PackhouseError as exc:
        fail(exc.message, 2)
    except OSError as exc:
        fail(str(exc))
    for name, reason in report.failures:
        err_console.print(f"[yellow]skipped[/] {name}: {reason}", highlight=False)
    if verbose:
        for name in report.written:
            console.print(f"wrote {name}", highlight=False)
        for name in report.removed:
            console.print(f"removed {name}", highlight=False)
    console.print(
        f"indexed {report.files} files of {report.projects} projects: {report.read} read,"
        f" {len(report.failures)} skipped, {len(report.written)} pages written,"
        f" {len(report.removed)} removed",
        highlight=False,
    )
