"""A big PyPI project's first pages after a restart, this checkout against another, side by side.

    git worktree add /tmp/before HEAD                 # or: git archive <commit> | tar -x -C DIR
    .venv/bin/python bench/cold_render.py --before /tmp/before --files 5000 --rounds 5
    .venv/bin/python bench/cold_render.py --before /tmp/a --after /tmp/b   # two snapshots

Each checkout gets its own SQLite data directory with one project of --files wheels (versions
from wheelgen.py; every 17th file yanked, every 5th with a provenance object, every other with a
metadata file, a 1 kB description each), added as rows in one transaction (no blobs: pages do
not read them) and given their page parts the way a server start gives them to files stored
before there were parts (`pypi_api.fill_all_parts`, where the checkout has it; an upload
renders the same bytes, tests/services/test_pypi_stored_parts.py). Then, --rounds
times and alternating between the two checkouts, a fresh process (a restart: nothing cached, no
parsed version, no compiled query) serves in turn:

1. the PEP 503 HTML page (the first render: reads the project, builds what the reader keeps);
2. the PEP 691 JSON page right after it;
3. PyPI's JSON API document (`/pypi/<project>/json`), cold;
4. one more file uploaded (add_row again), then the HTML page, the JSON page and the JSON API
   document again (the first view after an upload);

measuring each step's CPU time in the process (`time.process_time`: on a shared machine, wall
time also counts other people's work), and the process's VmRSS at the end. The pages are
compared between the two checkouts (byte for byte, except the JSON API's `upload_time`s, which
come from the seeding clock). Printed: each figure's median per checkout and after/before.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEPS = ("html", "json", "api", "up_html", "up_json", "up_api")


def child_seed(data: Path, files: int) -> None:
    sys.path.insert(0, str(HERE))
    from wheelgen import versions, wheel_filename

    from packhouse.config import Settings
    from packhouse.db import artifact_store, journal_store, repository_store
    from packhouse.db.artifact_store import NewArtifact
    from packhouse.services.bootstrap import first_start
    from packhouse.types import Format
    from packhouse.wiring import Services, build_context

    svc = Services.of(build_context(Settings(data=data, admin_password="bench-admin-pw")))
    first_start(svc.ctx)
    repo = svc.catalog.get(Format.PYPI, "main")
    description = "# Big\n\n" + "Some *text* with `code` and a [link](https://x.invalid).\n\n" * 18
    with svc.ctx.db.write() as conn:
        serial = journal_store.append(conn, actor="bench", action="bench.seed")
        project = repository_store.ensure_project(
            conn, repo.id, "big-project", "Big-Project", serial
        )
        for n, version in enumerate(versions(files)):
            digest = f"{n:064x}"
            new = NewArtifact(
                filename=wheel_filename("big-project", version),
                version=version,
                packagetype="wheel",
                sha256=digest,
                md5=digest[:32],
                blake2b_256=digest,
                size=1234 + n,
                uploader="bench",
                upload_time=svc.ctx.clock(),
                requires_python=">=3.9" if n % 3 else None,
                metadata_sha256=digest if n % 2 else None,
                metadata={
                    "metadata_version": "2.1",
                    "name": "Big-Project",
                    "version": version,
                    "summary": "The one with many files",
                    "description": description,
                    "description_content_type": "text/markdown",
                    "requires_python": ">=3.9",
                    "requires_dist": ["idna>=3"],
                },
                yanked=n % 17 == 0,
                yanked_reason="broken" if n % 34 == 0 else None,
                provenance={"version": 1, "attestation_bundles": []} if n % 5 == 0 else None,
            )
            artifact_store.add(conn, repo.id, project.id, new, serial)
        repository_store.touch(conn, repo.id, serial)
    try:
        from packhouse.services.pypi_api import fill_all_parts
    except ImportError:  # a checkout from before page parts
        pass
    else:
        fill_all_parts(svc.ctx)
    svc.close()


def child_measure(data: Path, extra: int, out: Path) -> None:
    import gc

    from packhouse.config import Settings
    from packhouse.db.artifact_store import NewArtifact
    from packhouse.services.artifacts import PendingArtifact, add_row
    from packhouse.types import Format
    from packhouse.wiring import Services, build_context

    svc = Services.of(build_context(Settings(data=data, admin_password="bench-admin-pw")))
    repo = svc.catalog.get(Format.PYPI, "main")
    reader = svc.pypi
    gc.collect()
    gc.freeze()  # as `packhouse serve` does before serving
    cpu: dict[str, float] = {}
    bodies: dict[str, bytes] = {}

    def step(name: str, run: object) -> None:
        start = time.process_time()
        bodies[name] = run()  # type: ignore[operator]
        cpu[name] = (time.process_time() - start) * 1000

    base = "http://bench.invalid"
    step("html", lambda: reader.project_page(repo, "big-project", "html").body)
    step("json", lambda: reader.project_page(repo, "big-project", "json").body)
    step("api", lambda: reader.json_api(repo, "big-project", None, base).body)
    version = f"9999.{extra}"
    digest = f"{10**9 + extra:064x}"
    new = NewArtifact(
        filename=f"big_project-{version}-py3-none-any.whl",
        version=version,
        packagetype="wheel",
        sha256=digest,
        md5=digest[:32],
        blake2b_256=digest,
        size=99,
        uploader="bench",
        upload_time=svc.ctx.clock(),
        metadata={"metadata_version": "2.1", "name": "Big-Project", "version": version},
    )
    with svc.ctx.db.write() as conn:
        add_row(conn, repo, "bench", PendingArtifact(new, "big-project", "Big-Project"), action="u")
    step("up_html", lambda: reader.project_page(repo, "big-project", "html").body)
    step("up_json", lambda: reader.project_page(repo, "big-project", "json").body)
    step("up_api", lambda: reader.json_api(repo, "big-project", None, base).body)
    rss = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    with svc.ctx.db.write() as conn:  # the next round starts from the same files
        from sqlalchemy import delete

        from packhouse.db.schema import artifacts

        conn.execute(delete(artifacts).where(artifacts.c.filename == new.filename))
    svc.close()
    out.write_text(json.dumps({"cpu": cpu, "rss": rss, "digests": _digests(bodies)}))


def _digests(bodies: dict[str, bytes]) -> dict[str, str]:
    import hashlib

    out = {}
    for k, v in bodies.items():
        if "api" in k:
            doc = json.loads(v)
            for files in [*doc["releases"].values(), doc["urls"]]:
                for f in files:
                    f.pop("upload_time"), f.pop("upload_time_iso_8601")
            v = json.dumps(doc, sort_keys=True).encode()
        else:
            v = _without_times(v)
        out[k] = hashlib.sha256(v).hexdigest()
    return out


def _without_times(body: bytes) -> bytes:
    import re

    return re.sub(rb'"upload-time":"[^"]*"', b"", body)


def run_child(src: Path, *argv: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(src / "src"), "PACKHOUSE_LOG_LEVEL": "warning"}
    subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--before", type=Path, help="the other checkout (required)")
    parser.add_argument(
        "--after", type=Path, default=ROOT, help="the checkout to compare (this one)"
    )
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "seed":
            child_seed(Path(rest[0]), int(rest[1]))
        else:
            child_measure(Path(rest[0]), int(rest[1]), Path(rest[2]))
        return
    if args.before is None:
        parser.error("--before is required")
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
    with tempfile.TemporaryDirectory(prefix="cold-render-") as tmp:
        for side, src in sides.items():
            started = time.perf_counter()
            run_child(src, "--child", "seed", f"{tmp}/{side}", str(args.files))
            print(f"{side}: seeded {args.files} files in {time.perf_counter() - started:.1f} s")
        for n in range(args.rounds):
            for side, src in sides.items() if n % 2 == 0 else reversed(sides.items()):
                out = Path(tmp) / f"{side}-{n}.json"
                run_child(src, "--child", "measure", f"{tmp}/{side}", str(n), str(out))
                results[side].append(json.loads(out.read_text()))
    same = results["before"][0]["digests"] == results["after"][0]["digests"]
    print(
        f"\n{args.files} files (+1 uploaded per round), {args.rounds} rounds, CPU ms in the"
        f" serving process, median; pages the same in both (upload times aside): {same}"
    )
    if not same:
        for k in STEPS:
            b, a = (results[s][0]["digests"][k] for s in sides)
            print(f"  {k}: {'same' if a == b else 'DIFFERENT'}")
    print("| step | before ms | after ms | after/before |\n| --- | ---: | ---: | ---: |")
    labels = {
        "html": "HTML page, first render after a restart",
        "json": "JSON page, right after",
        "api": "JSON API document, cold",
        "up_html": "HTML page after an upload",
        "up_json": "JSON page after an upload",
        "up_api": "JSON API document after an upload",
    }
    for k in STEPS:
        b, a = (statistics.median(r["cpu"][k] for r in results[s]) for s in sides)
        print(f"| {labels[k]} | {b:.1f} | {a:.1f} | {a / b:.2f}x |")
    b, a = (statistics.median(r["rss"] for r in results[s]) for s in sides)
    print(f"| VmRSS after these (MiB) | {b:.1f} | {a:.1f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
