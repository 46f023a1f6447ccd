"""`packhouse conda ...`: commands for conda channels (mounted by cli/main.py).

`packhouse conda index` takes conda-index 0.13's options under their names (and Packhouse's
earlier names beside them); see docs/conda.md for the few that differ.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO

import typer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["app"]

app = typer.Typer(help="Work with conda channels.", no_args_is_help=True)

_EPILOG = """\
Examples:

  packhouse conda index ./channel

  packhouse conda index ./channel --bz2 --current-repodata --run-exports

  packhouse conda index ./channel --patch-generator conda-forge-repodata-patches-20180828-0.tar.bz2

  packhouse conda index ./channel --no-write-shards --threads 4 --subdir linux-64
"""


@app.callback()
def _main() -> None:
    """Work with conda channels."""


def _pins(path: Path | None) -> dict[str, list[str]] | None:
    """conda-index's --current-index-versions-file: YAML (or JSON) `{name: [versions]}`."""
    if path is None:
        return None
    text = path.read_text(encoding="utf-8")
    document: Any
    try:
        import yaml  # type: ignore[import-untyped]  # PyYAML, when installed

        document = yaml.safe_load(text)
    except ImportError:
        document = json.loads(text)
    if not isinstance(document, dict) or not all(isinstance(v, list) for v in document.values()):
        raise ValueError(f"{path}: give each package name a list of versions")
    return {str(k): [str(v) for v in vs] for k, vs in document.items()}


@app.command("index", epilog=_EPILOG)
def index(
    directory: Annotated[
        Path, typer.Argument(help="The channel directory, holding noarch/ and other subdirs.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", help="Write repodata to this directory instead.")
    ] = None,
    subdir: Annotated[
        list[str] | None,
        typer.Option("--subdir", help="Index only this subdir; give it more than once."),
    ] = None,
    channel_name: Annotated[
        str | None,
        typer.Option("--channel-name", "-n", help="The channel name in index.html and rss.xml."),
    ] = None,
    patch_generator: Annotated[
        Path | None,
        typer.Option(
            "--patch-generator",
            "--patch",
            help="A repodata-patches .conda/.tar.bz2 holding <subdir>/patch_instructions.json,"
            " a .py file with _patch_repodata(repodata, subdir), or a patch_instructions.json.",
        ),
    ] = None,
    channeldata: Annotated[
        bool,
        typer.Option("--channeldata/--no-channeldata", help="Write channeldata.json at the root."),
    ] = True,
    rss: Annotated[
        bool, typer.Option("--rss/--no-rss", help="Write rss.xml (with --channeldata).")
    ] = True,
    bz2: Annotated[bool, typer.Option("--bz2/--no-bz2", help="Write repodata.json.bz2.")] = False,
    zst: Annotated[bool, typer.Option("--zst/--no-zst", help="Write repodata.json.zst.")] = True,
    run_exports: Annotated[
        bool, typer.Option("--run-exports/--no-run-exports", help="Write run_exports.json.")
    ] = False,
    compact: Annotated[
        bool, typer.Option("--compact/--no-compact", help="JSON on one line, or indented.")
    ] = True,
    current_index_versions_file: Annotated[
        Path | None,
        typer.Option(
            "--current-index-versions-file",
            "-m",
            help="YAML {name: [versions]}: current_repodata.json also keeps the newest of each.",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="URL of the packages' tree (repodata_version 2)."),
    ] = None,
    update_cache: Annotated[
        bool,
        typer.Option(
            "--update-cache/--no-update-cache",
            help="List the subdirs for new packages; --no-update-cache indexes the cached list.",
        ),
    ] = True,
    update_only: Annotated[
        bool,
        typer.Option(
            "--update-only/--no-update-only", help="Keep packages no longer on disk in the index."
        ),
    ] = False,
    upstream_stage: Annotated[
        str, typer.Option("--upstream-stage", help="Only 'fs' (conda-index's default).")
    ] = "fs",
    current_repodata: Annotated[
        bool,
        typer.Option(
            "--current-repodata/--no-current-repodata", help="Write current_repodata.json."
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", "--jobs", "-j", help="Processes reading packages (default: CPUs)."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="List every file written.")] = False,
    write_monolithic: Annotated[
        bool,
        typer.Option(
            "--write-monolithic/--no-write-monolithic",
            help="Write repodata.json with every record in one file.",
        ),
    ] = True,
    write_shards: Annotated[
        bool,
        typer.Option(
            "--write-shards/--no-write-shards",
            "--shards/--no-shards",
            help="Write CEP 16 sharded repodata.",
        ),
    ] = True,
    db: Annotated[
        str, typer.Option("--db", help="Only 'sqlite3': the cache is Packhouse's own.")
    ] = "sqlite3",
    db_url: Annotated[
        str | None, typer.Option("--db-url", help="Not used (conda-index's PostgreSQL cache).")
    ] = None,
    html_dependencies: Annotated[
        bool,
        typer.Option(
            "--html-dependencies/--no-html-dependencies",
            help="Not supported: index.html has no dependency pop-ups.",
        ),
    ] = False,
    repodata_next: Annotated[
        bool,
        typer.Option(
            "--repodata-next/--no-repodata-next", help="Not supported (conda-index: experimental)."
        ),
    ] = False,
) -> None:
    """Index a conda channel directory in place, like `conda index`, incrementally."""
    from packhouse.errors import PackhouseError
    from packhouse.services.conda_index import IndexOptions, index_channel

    console = _Lines(sys.stderr)

    def fail(message: str, code: int = 2) -> NoReturn:
        console.print(f"[red]error:[/] {message}", plain=f"error: {message}")
        raise typer.Exit(code)

    if not directory.is_dir():
        fail(f"{directory} is not a directory")
    unsupported = [
        message
        for on, message in (
            (upstream_stage != "fs", f"--upstream-stage {upstream_stage!r}: only 'fs' is read"),
            (db != "sqlite3", f"--db {db!r}: Packhouse keeps its own cache; use sqlite3"),
            (db_url is not None and db != "sqlite3", "--db-url: no PostgreSQL cache here"),
            (html_dependencies, "--html-dependencies: index.html has no dependency pop-ups"),
            (repodata_next, "--repodata-next: the experimental v3 layout is not written"),
        )
        if on
    ]
    if unsupported:
        fail("not supported by packhouse conda index: " + "; ".join(unsupported))
    try:
        pins = _pins(current_index_versions_file)
    except (OSError, ValueError) as error:
        fail(f"--current-index-versions-file: {error}")
    options = IndexOptions(
        zst=zst,
        bz2=bz2,
        shards=write_shards,
        monolithic=write_monolithic,
        current_repodata=current_repodata,
        channeldata=channeldata,
        rss=rss,
        run_exports=run_exports,
        patch=patch_generator.expanduser() if patch_generator else None,
        jobs=threads,
        channel_name=channel_name,
        subdirs=tuple(subdir or ()),
        output=output.expanduser() if output else None,
        base_url=base_url,
        compact=compact,
        current_index_versions=pins,
        update_cache=update_cache,
        update_only=update_only,
    )
    try:
        if console.rich is not None and console.rich.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console.rich,
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
        fail(str(error), 1)
    for path, reason in report.failures:
        console.print(f"[yellow]skipped[/] {path}: {reason}", plain=f"skipped {path}: {reason}")
    if verbose:
        for name in report.written:
            console.print(f"wrote {name}")
    summary = (
        f"indexed {report.packages} packages in {len(report.subdirs)} subdirs"
        f" ({', '.join(report.subdirs)}): {report.read} read, {report.removed} removed,"
        f" {len(report.failures)} skipped, {len(report.written)} files written"
    )
    _Lines(sys.stdout).print(summary)


class _Lines:
    """Lines for a stream: through rich on a terminal (or where rich is told to style, as
    FORCE_COLOR does), else as plain text, which spares a re-index importing rich."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.rich: Console | None = None
        if stream.isatty() or any(os.environ.get(v) for v in _RICH_STYLES):
            from rich.console import Console

            self.rich = Console(file=stream, soft_wrap=True)

    def print(self, text: str, *, plain: str | None = None) -> None:
        """`text` in rich markup, `plain` the same without it (default: `text`)."""
        if self.rich is not None:
            self.rich.print(text, highlight=False, soft_wrap=True)
        else:
            print(text if plain is None else plain, file=self.stream, flush=True)


# rich reads these to style output that is not a terminal
_RICH_STYLES = ("FORCE_COLOR", "TTY_INTERACTIVE", "TTY_COMPATIBLE")
