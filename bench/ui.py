"""Web UI timings, in-process (Starlette's TestClient over the real app, SQLite or PostgreSQL).

    .venv/bin/python bench/ui.py                       # 1,000 files, 10,000 projects
    .venv/bin/python bench/ui.py --files 200 --projects 2000 --rounds 20
    .venv/bin/python bench/ui.py --database-url 'postgresql+psycopg://...?options=-csearch_path%3Dbench'

Seeds rows straight into the database (uploading 11,000 wheels through the service would
take ten minutes of fsyncs; pages read rows, not blobs): one project with --files wheels
and a Markdown description, and --projects projects of one wheel each with their own
summaries. The cold rounds upload through the upload service. Then reports the median and
p95 of:

1. the project page of the big project, warm, and cold (the first view after an upload),
   beside the JSON API document it is made from, cold;
2. search over every project (several queries: a name, a prefix, a summary word, nothing),
   through the page, and in-process beside the substring scan of an in-memory list that
   search was before the index (migration 0013), kept here for the comparison;
3. the simple page of the big project with the app as built and with the UI's routes taken
   out, as a ratio: the UI adds nothing to the simple API's hot path when it is ~1.00;
4. a file download with and without download counting, as a ratio.

The goals (issue 13): project page under 100 ms, search under 50 ms.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sqlalchemy import select, text  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from wheelgen import versions, wheel_bytes, wheel_filename  # noqa: E402

from packhouse.config import Settings  # noqa: E402
from packhouse.db import artifact_store, journal_store, repository_store, search_store  # noqa: E402
from packhouse.db.artifact_store import NewArtifact  # noqa: E402
from packhouse.db.schema import search_entries  # noqa: E402
from packhouse.services.access import Principal  # noqa: E402
from packhouse.services.bootstrap import first_start  # noqa: E402
from packhouse.services.browse import Browse  # noqa: E402
from packhouse.services.downloads import DownloadCounter  # noqa: E402
from packhouse.services.pypi_uploads import upload_pypi  # noqa: E402
from packhouse.storage.base import IncomingFile  # noqa: E402
from packhouse.types import Format  # noqa: E402
from packhouse.web.app import create_app  # noqa: E402
from packhouse.web.ui import account as ui_account  # noqa: E402
from packhouse.web.ui import routes as ui_routes  # noqa: E402
from packhouse.wiring import Services, build_context  # noqa: E402

PASSWORD = "bench-admin-pw"
WORDS = ["frob", "widget", "ledger", "parser", "plot", "queue", "cache", "crypto", "geo", "ml"]


def upload(svc: Services, who: Principal, project: str, version: str, summary: str) -> None:
    repo = svc.catalog.get(Format.PYPI, "main")
    incoming = IncomingFile(svc.ctx.tmp_dir, 1 << 30)
    incoming.write(wheel_bytes(project, version, summary=summary))
    incoming._file.flush()
    incoming._file.close()
    fields = {":action": "file_upload", "name": project, "version": version}
    try:
        upload_pypi(svc.ctx, repo, who, fields, wheel_filename(project, version), incoming)
    finally:
        incoming.discard()


DESCRIPTION = (
    "# The big project\n\n"
    + "Some *text* with `code` and a [link](https://example.invalid).\n\n" * 40
)


def seed(svc: Services, files: int, projects: int) -> None:
    repo = svc.catalog.get(Format.PYPI, "main")
    now = svc.ctx.clock()
    wanted = [("big-project", v, "The one with many files") for v in versions(files)]
    for i in range(projects):
        words = f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7) % len(WORDS)]} tools number {i}"
        wanted.append((f"proj-{i:05d}", "1.0", f"Synthetic {words}"))
    with svc.ctx.db.write() as conn:
        serial = journal_store.append(conn, actor="bench", action="bench.seed")
        ids: dict[str, int] = {}
        for n, (name, version, summary) in enumerate(wanted):
            if name not in ids:
                ids[name] = repository_store.ensure_project(conn, repo.id, name, name, serial).id
            digest = f"{n:064x}"
            meta = {
                "metadata_version": "2.1",
                "name": name,
                "version": version,
                "summary": summary,
                "description": DESCRIPTION if name == "big-project" else "A project.",
                "description_content_type": "text/markdown",
                "requires_python": ">=3.9",
                "requires_dist": ["idna>=3"],
            }
            new = NewArtifact(
                filename=wheel_filename(name, version),
                version=version,
                packagetype="wheel",
                sha256=digest,
                md5=digest[:32],
                blake2b_256=digest,
                size=1234 + n,
                uploader="bench",
                upload_time=now,
                requires_python=">=3.9",
                metadata=meta,
            )
            artifact_store.add(conn, repo.id, ids[name], new, serial)
        search_store.refresh(conn, ids.values())  # what every upload does for its project
        repository_store.touch(conn, repo.id, serial)
    try:  # the page parts a server's start gives rows stored without them
        from packhouse.services.pypi_api import fill_all_parts
    except ImportError:  # a checkout from before page parts
        return
    fill_all_parts(svc.ctx)


class SubstringSearch:
    """Search as it was before the index: every hosted name with its newest summary held in
    memory, scanned for the query as a substring, ranked exact name, name prefix, in the name,
    in the summary (services/browse.py before migration 0013), the best `limit` kept."""

    def __init__(self, svc: Services) -> None:
        with svc.ctx.db.read() as conn:
            rows = conn.execute(
                select(
                    search_entries.c.name, search_entries.c.display_name, search_entries.c.summary
                ).order_by(search_entries.c.name)
            ).all()
        self.entries = [
            (
                r.name,
                r.display_name.lower(),
                r.display_name.lower() + " " + r.name,
                r.summary.lower(),
            )
            for r in rows
        ]

    def search(self, query: str, limit: int = 50) -> list[str]:
        wanted = query.strip().lower()
        kept = [0, 0, 0, 0]
        found: list[tuple[int, str]] = []
        for name, display, haystack, summary in self.entries:
            if wanted in haystack:
                rank = 0 if wanted in (name, display) else 1 if haystack.startswith(wanted) else 2
            elif wanted in summary:
                rank = 3
            else:
                continue
            if kept[rank] < limit:
                kept[rank] += 1
                found.append((rank, name))
        return [name for _, name in heapq.nsmallest(limit, found)]


def timed(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """(median, p95) in milliseconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument(
        "--database-url",
        default="",
        help="an empty PostgreSQL database or schema (default: SQLite in a temporary directory)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data=Path(tmp), admin_password=PASSWORD, database_url=args.database_url)
        svc = Services.of(build_context(settings))
        first_start(svc.ctx)
        admin = svc.access.snapshot().users["admin"]
        who = Principal(admin.name, admin.id, True)
        start = time.perf_counter()
        seed(svc, args.files, args.projects)
        if not svc.ctx.db.is_sqlite:  # what autovacuum does within a minute of such a load
            with svc.ctx.db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        print(f"seeded {args.files} + {args.projects} files in {time.perf_counter() - start:.1f} s")
        auth = ("admin", PASSWORD)
        app = create_app(settings, svc)
        with TestClient(app) as client:
            page = "/ui/pypi/main/big-project/"
            assert client.get(page, auth=auth).status_code == 200

            def get(path: str) -> Callable[[], object]:
                def run() -> None:
                    response = client.get(path, auth=auth)
                    assert response.status_code == 200, response.text[:200]

                return run

            warm = timed(get(page), args.rounds)
            extra = iter(range(10**6))

            def cold() -> None:
                upload(svc, who, "big-project", f"9999.{next(extra)}", "The one with many files")
                started = time.perf_counter()
                get(page)()
                cold_times.append((time.perf_counter() - started) * 1000)

            cold_times: list[float] = []
            for _ in range(max(5, args.rounds // 5)):
                cold()
            cold_times.sort()
            json_cold: list[float] = []
            for _ in range(max(5, args.rounds // 5)):
                upload(svc, who, "big-project", f"9999.{next(extra)}", "The one with many files")
                started = time.perf_counter()
                get("/pypi/main/pypi/big-project/json")()
                json_cold.append((time.perf_counter() - started) * 1000)
            print(
                f"project page ({args.files} files), warm: median {warm[0]:.1f} ms,"
                f" p95 {warm[1]:.1f} ms"
            )
            print(
                f"project page, cold (after an upload): median {statistics.median(cold_times):.1f}"
                f" ms, max {cold_times[-1]:.1f} ms; the JSON API document it is made from, cold"
                f" alone: median {statistics.median(json_cold):.1f} ms"
            )
            substring = SubstringSearch(svc)
            browse = Browse(svc.ctx, svc.catalog, svc.access, svc.upstreams)
            for q in ("proj-04242", "proj-0", "ledger", "tools", "zzz-nothing"):
                ways: dict[str, Callable[[], object]] = {
                    "page": get(f"/ui/search?q={q}"),
                    "index": functools.partial(browse.search, who, q),
                    "substring": functools.partial(substring.search, q),
                }
                times: dict[str, list[float]] = {way: [] for way in ways}
                for _ in range(args.rounds):  # interleaved, so load changes hit all alike
                    for way, fn in ways.items():
                        times[way].append(timed(fn, 1)[0])
                page_ms = sorted(times["page"])
                shown = (statistics.median(page_ms), page_ms[int(len(page_ms) * 0.95)])
                index_ms, substring_ms = (
                    statistics.median(times[w]) for w in ("index", "substring")
                )
                print(
                    f"search {q!r} over {args.projects + 1} projects: page median {shown[0]:.1f}"
                    f" ms, p95 {shown[1]:.1f} ms; in-process: index {index_ms:.2f} ms, substring"
                    f" scan {substring_ms:.2f} ms (median), ratio {index_ms / substring_ms:.2f}"
                )
            simple = "/pypi/main/simple/big-project/"
            with_ui = timed(get(simple), args.rounds * 4)
            doc = client.get("/pypi/main/pypi/big-project/9999.0/json", auth=auth).json()
            file_path = doc["urls"][0]["url"].removeprefix("http://testserver")
            real_count = DownloadCounter.count

            def uncounted_get() -> None:
                DownloadCounter.count = lambda self, artifact_id: None  # type: ignore[method-assign]
                try:
                    get(file_path)()
                finally:
                    DownloadCounter.count = real_count  # type: ignore[method-assign]

            counted_times, uncounted_times = [], []
            for _ in range(args.rounds * 4):  # interleaved, so load changes hit both alike
                counted_times.append(timed(get(file_path), 1)[0])
                uncounted_times.append(timed(uncounted_get, 1)[0])
            counted = (statistics.median(counted_times), 0.0)
            uncounted = (statistics.median(uncounted_times), 0.0)
            print(
                f"file download: counted {counted[0]:.2f} ms, not counted {uncounted[0]:.2f} ms"
                f" (median), ratio {counted[0] / uncounted[0]:.2f}"
            )
        bare = create_app(settings, svc)
        ui_endpoints = {r.endpoint for r in [*ui_routes.routes, *ui_account.routes]}  # type: ignore[attr-defined]
        bare.router.routes[:] = [
            r for r in bare.router.routes if getattr(r, "endpoint", None) not in ui_endpoints
        ]
        with TestClient(bare) as client:
            without_ui = timed(get(simple), args.rounds * 4)
        print(
            f"simple page of the big project: with the UI {with_ui[0]:.2f} ms, without"
            f" {without_ui[0]:.2f} ms (median), ratio {with_ui[0] / without_ui[0]:.2f}"
        )
        svc.close()


if __name__ == "__main__":
    main()
