"""`packhouse export DIR`, `packhouse export --static DIR`, `packhouse import DIR`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from packhouse.cli.common import ConfigOption, DataOption, console, err_console, fail, settings_from
from packhouse.errors import PackhouseError

DirArg = Annotated[Path, typer.Argument(help="The export directory.", show_default=False)]

ProgressFn = Callable[[str, int, int | None], None]


@contextmanager
def progress_bar() -> Iterator[ProgressFn]:
    """A Rich progress bar on a terminal (stderr), nothing elsewhere."""
    if not err_console.is_terminal:
        yield lambda _what, _done, _total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        tasks: dict[str, object] = {}

        def update(what: str, done: int, total: int | None) -> None:
            task = tasks.get(what)
            if task is None:
                task = tasks[what] = bar.add_task(what, total=total)
            bar.update(task, completed=done, total=total)  # type: ignore[arg-type]

        yield update


def export(
    directory: DirArg,
    static: Annotated[
        bool,
        typer.Option(
            "--static",
            help="Write a static tree for pip, uv, conda and rattler (file:// or any web"
            " server) instead of an export to import.",
        ),
    ] = False,
    repo: Annotated[
        list[str] | None,
        typer.Option(
            "--repo",
            help="With --static: only this repository (pypi/NAME or conda/NAME, or NAME for"
            " both); repeatable. Default: every repository.",
        ),
    ] = None,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Export everything (repositories, artifacts, blobs, users, groups, token hashes,
    permissions, patches, the journal) into a new directory, for `packhouse import`.

    Safe while the server runs: the rows are read in one snapshot.

    Examples:

      packhouse export /backup/packhouse-2026-12-03

      packhouse export --static /srv/mirror --repo main
    """
    from packhouse.cli.common import open_services

    if repo and not static:
        fail("--repo goes with --static (a full export always holds every repository)", 2)
    with open_services(data, config) as svc, progress_bar() as progress:
        if static:
            from packhouse.services.static_export import export_static

            report = export_static(svc, directory, repo or [], progress)
            console.print(
                f"wrote a static tree at {directory}: {report.summary()}", highlight=False
            )
            return
        from packhouse.services.export import export_all

        done = export_all(svc.ctx, directory, progress)
    console.print(
        f"exported {sum(done.rows.values())} rows of {len(done.rows)} tables and"
        f" {done.blobs} blobs ({done.blob_bytes} bytes) to {directory}",
        highlight=False,
    )


def import_(directory: DirArg, data: DataOption = None, config: ConfigOption = None) -> None:
    """Import an export into a new, empty server (database and storage from --data,
    --config or PACKHOUSE_*), all or nothing.

    Run it before the server's first start (which creates the `main` repositories).

    Example:

      PACKHOUSE_DATABASE_URL=postgresql+psycopg://packhouse@db/packhouse \\
        PACKHOUSE_STORAGE=s3 packhouse import /backup/packhouse-2026-12-03
    """
    from packhouse.services.import_ import import_all
    from packhouse.wiring import build_context

    if not directory.is_dir():
        fail(f"{directory} is not a directory", 2)
    settings = settings_from(data, config)
    try:
        ctx = build_context(settings)
    except PackhouseError as exc:
        fail(exc.message)
    try:
        with progress_bar() as progress:
            done = import_all(ctx, directory, progress)
    except PackhouseError as exc:
        fail(exc.message)
    finally:
        ctx.db.dispose()
    console.print(
        f"imported {sum(done.rows.values())} rows of {len(done.rows)} tables and"
        f" {done.blobs} blobs ({done.blob_bytes} bytes) from {directory}",
        highlight=False,
    )
