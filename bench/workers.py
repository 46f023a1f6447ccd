"""`packhouse serve --workers 2` against one worker, on SQLite and on PostgreSQL, side by side.

    .venv/bin/python bench/workers.py                 # 10 s per run
    .venv/bin/python bench/workers.py --duration 20 --files 200

For each configuration (SQLite with 1 and 2 workers, PostgreSQL with 1 and 2 workers) a
fresh server is started on loopback, one project of --files wheels is uploaded over the
legacy upload API, and wrk asks for its PEP 691 page (authorised, Basic) for --duration
seconds. The load generator shares this machine's cores with the server, so beside the
throughput the figure to compare is the server's CPU time (every process of it: the parent
and its workers, from /proc) per 10,000 requests. Ratios are against SQLite with 1 worker.

PostgreSQL is the one on 127.0.0.1:5432 (database `test`, trust auth; --postgres to change);
each run gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pypi_simple import JSON_V1, basic, free_port, wait_http, wrk  # noqa: E402
from wheelgen import wheel_bytes, wheel_filename  # noqa: E402

BIN = Path(sys.executable).parent
PASSWORD = "bench-admin-pw"
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and every live descendant (user + system)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICK
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo += [child for child, parent in parents.items() if parent == current]
    return total


@dataclass
class Result:
    name: str
    rps: float
    cpu_per_10k: float
    errors: int


PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc"]


def schema_url(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    subprocess.run([*PSQL, f"CREATE SCHEMA {schema}"], check=True)
    return schema, f"{base}?options=-csearch_path%3D{schema}"


def drop_schema(schema: str) -> None:
    quiet = {**os.environ, "PGOPTIONS": "--client-min-messages=warning"}
    subprocess.run([*PSQL, f"DROP SCHEMA {schema} CASCADE"], check=True, env=quiet)


def one_run(
    name: str, workers: int, database_url: str, args: argparse.Namespace, tmp: Path
) -> Result:
    port = free_port()
    data = tmp / f"data-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PACKHOUSE_ADMIN_PASSWORD": PASSWORD, "PACKHOUSE_LOG_LEVEL": "warning"}
    argv = [
        str(BIN / "packhouse"), "serve", "--data", str(data), "--port", str(port),
        "--workers", str(workers), "--no-access-log",
    ]  # fmt: skip
    if database_url:
        argv += ["--database-url", database_url]
    log = (tmp / f"{name}.log").open("wb")
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_http(port, "/healthz")
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=60) as client:
            for i in range(args.files):
                version = f"1.{i}"
                filename = wheel_filename("bench-pkg", version)
                response = client.post(
                    "/pypi/main/",
                    data={":action": "file_upload", "name": "bench-pkg", "version": version},
                    files={"content": (filename, wheel_bytes("bench-pkg", version))},
                )
                response.raise_for_status()
            for _ in range(50):  # every worker renders and caches the page
                client.get("/pypi/main/simple/bench-pkg/", headers={"Accept": JSON_V1})
        headers = {"Accept": JSON_V1, "Authorization": basic("admin", PASSWORD)}
        before = tree_cpu(server.pid)
        result = wrk(
            f"{url}/pypi/main/simple/bench-pkg/",
            headers,
            tmp,
            cpu=args.wrk_cpus,
            duration=args.duration,
            connections=args.connections,
        )
        used = tree_cpu(server.pid) - before
        requests = result.rps * args.duration
        return Result(name, result.rps, used / requests * 10_000, result.errors)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-cpus", default="0-1", help="taskset CPU list for wrk")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="packhouse-workers-") as scratch:
        tmp = Path(scratch)
        for workers in (1, 2):
            results.append(one_run(f"sqlite, {workers} worker(s)", workers, "", args, tmp))
        for workers in (1, 2):
            schema, url = schema_url(args.postgres)
            try:
                name = f"postgres, {workers} worker(s)"
                results.append(one_run(name, workers, url, args, tmp))
            finally:
                drop_schema(schema)

    base = results[0]
    print(f"\nGET one PEP 691 page ({args.files} files), {args.duration} s,", end=" ")
    print(f"wrk -c{args.connections}")
    print(f"{'server':<24} {'req/s':>9} {'x':>6} {'CPU s/10k req':>14} {'x':>6} {'errors':>7}")
    for r in results:
        print(
            f"{r.name:<24} {r.rps:>9.0f} {r.rps / base.rps:>6.2f}"
            f" {r.cpu_per_10k:>14.3f} {r.cpu_per_10k / base.cpu_per_10k:>6.2f} {r.errors:>7}"
        )
    sqlite2, pg2 = results[1], results[3]
    print(f"\nPostgreSQL/SQLite throughput, 2 workers: {pg2.rps / sqlite2.rps:.2f}x")
    print(f"CPU per request, 2 workers/1 (SQLite): {sqlite2.cpu_per_10k / base.cpu_per_10k:.2f}x")


if __name__ == "__main__":
    main()
