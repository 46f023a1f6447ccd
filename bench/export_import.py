"""`packhouse export` and `packhouse import` at a few sizes: time, rows per second, peak RSS.

A SQLite + disk data directory is seeded straight through db/dump_store.py (one hosted
repository, N artifacts of ten per project, each with a 2 kB metadata document and a journal
row, and N small blobs), exported, imported into a fresh PostgreSQL schema (blobs on local
disk), and exported again from PostgreSQL. Each command is a whole `packhouse` process timed
with its start-up; peak RSS is the process's (/usr/bin/time). Streaming shows as a peak RSS
that stays flat while N grows.

    .venv/bin/python bench/export_import.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from packhouse.db import dump_store
from packhouse.db.engine import Database
from packhouse.storage.local import LocalBlobStore

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PACKHOUSE = Path(sys.executable).parent / "packhouse"
BATCH = 5000


def seed(data: Path, n: int) -> None:
    db = Database(f"sqlite:///{data / 'packhouse.db'}")
    db.upgrade()
    blobs = LocalBlobStore(data / "blobs")
    now = datetime.now(UTC).isoformat()
    description = "x" * 2000
    with db.write() as conn:
        for name in dump_store.seeded_tables():
            dump_store.clear(conn, name)
        dump_store.insert_rows(conn, "repositories", [{
            "id": 1, "name": "main", "format": "pypi", "kind": "hosted", "description": "",
            "uploads_enabled": True, "allow_upstream": [], "last_serial": n, "created_at": now,
            "offline": False,
        }])  # fmt: skip
        for start in range(0, n, BATCH):
            ids = range(start + 1, min(n, start + BATCH) + 1)
            journal, projects, artifacts = [], [], []
            for i in ids:
                content = f"blob {i}".encode() * 64
                sha = hashlib.sha256(content).hexdigest()
                blob = blobs.root / sha[:2] / sha[2:4] / sha  # as LocalBlobStore lays them out,
                blob.parent.mkdir(parents=True, exist_ok=True)  # without its fsync per blob
                blob.write_bytes(content)
                project = (i - 1) // 10 + 1
                filename = f"p{project}-{i}-py3-none-any.whl"
                journal.append({"serial": i, "time": now, "actor": "bench", "action": "upload",
                                "repository": "pypi/main", "project": f"p{project}",
                                "filename": filename, "detail": {"sha256": sha}})  # fmt: skip
                if (i - 1) % 10 == 0:
                    projects.append({"id": project, "repository_id": 1, "name": f"p{project}",
                                     "display_name": f"p{project}", "last_serial": i})  # fmt: skip
                artifacts.append({
                    "id": i, "repository_id": 1, "project_id": project, "filename": filename,
                    "version": str(i), "packagetype": "wheel", "sha256": sha, "md5": "0" * 32,
                    "blake2b_256": "0" * 64, "size": len(content), "upload_time": now,
                    "uploader": "bench", "metadata": {"name": f"p{project}",
                    "description": description}, "yanked": False, "deleted": False, "serial": i,
                })  # fmt: skip
            dump_store.insert_rows(conn, "journal", journal)
            dump_store.insert_rows(conn, "projects", projects)
            dump_store.insert_rows(conn, "artifacts", artifacts)
    db.dispose()


def timed(*args: str | Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one packhouse command, measured by /usr/bin/time
    (a fresh small process: a child forked from this one would count this one's memory)."""
    start = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", str(PACKHOUSE), *map(str, args)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"packhouse {args[0]} failed: {result.stderr}")
    return elapsed, int(result.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKHOUSE_")}
    print("| artifacts | rows | step | seconds | rows/s | peak RSS MiB |")
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    for n in (int(s) for s in args.sizes.split(",")):
        root = Path(tempfile.mkdtemp(prefix="ph-bench-export-"))
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            seed(root / "src", n)
            rows = n * 2 + n // 10 + 1
            pg = {**env, "PACKHOUSE_DATABASE_URL": f"{POSTGRES}?options=-csearch_path%3D{schema}"}
            steps = [
                ("export from SQLite", ("export", root / "e1", "--data", root / "src"), env),
                ("import into PostgreSQL", ("import", root / "e1", "--data", root / "pg"), pg),
                ("export from PostgreSQL", ("export", root / "e2", "--data", root / "pg"), pg),
            ]
            for label, command, environ in steps:
                seconds, rss = timed(*command, env=environ)
                print(f"| {n:,} | {rows:,} | {label} | {seconds:.1f} | {rows / seconds:,.0f} |"
                      f" {rss:.0f} |", flush=True)  # fmt: skip
            same = all(
                (root / "e1" / f.name).read_bytes() == f.read_bytes()
                for f in (root / "e2").glob("*.jsonl")
            )
            print(f"<!-- {n}: the two exports' tables equal: {same} -->")
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
