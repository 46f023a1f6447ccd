"""`packhouse cache ...`: what proxies keep of their upstreams."""

from __future__ import annotations

from typing import Annotated

import typer

from packhouse.cli.common import ConfigOption, DataOption, console, fail, open_services
from packhouse.errors import PackhouseError
from packhouse.units import parse_duration, parse_size, show_size

app = typer.Typer(
    help="Proxy caches: what was fetched from upstreams.",
    epilog="Example: packhouse cache prune --older-than 30d --max-size 50GiB --dry-run",
    no_args_is_help=True,
)


@app.command("prune")
def prune(
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Forget files unused for this long (30d, 12h)."),
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option("--max-size", help="Then forget the least recently used past this (50GiB)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go, change nothing.")
    ] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Forget cached upstream files and index pages; they are fetched again when asked for.

    Examples:

      packhouse cache prune --older-than 30d

      packhouse cache prune --max-size 50GiB --dry-run
    """
    from packhouse.services.cache_prune import prune as run_prune

    if older_than is None and max_size is None:
        fail("give --older-than, --max-size or both", 2)
    try:
        age = parse_duration(older_than) if older_than is not None else None
        size = parse_size(max_size) if max_size is not None else None
    except PackhouseError as exc:
        fail(exc.message, 2)
    with open_services(data, config) as svc:
        report = run_prune(svc.ctx, older_than=age, max_size=size, dry_run=dry_run)
    verb = "would forget" if dry_run else "forgot"
    console.print(
        f"{verb} {report.files} cached files ({show_size(report.file_bytes)}) and"
        f" {report.pages} index pages; {report.kept_files} files"
        f" ({show_size(report.kept_bytes)}) kept"
        + ("" if dry_run else f"; {report.blobs_deleted} blobs deleted"),
        highlight=False,
    )
