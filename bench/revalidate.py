"""Revalidation cost: a 304 for an unchanged index page against the cached 200 it replaces.

    .venv/bin/python bench/revalidate.py                     # about 2 minutes
    .venv/bin/python bench/revalidate.py --duration 5 --files 2000

Index pages are served `no-cache` with an ETag (docs/pypi.md "Caching"): pip and uv ask
again on every run with If-None-Match. This measures what that costs the server against
the old `max-age=60`, whose re-reads were cached 200s. One Packhouse server pinned to one
core (`taskset -c 0`), wrk on the other (`taskset -c 1`), for a project page with --files
files (HTML and PEP 691 JSON), the project list and the JSON API, public and private:

1. throughput and p99 of the cached 200 (no If-None-Match) and of the 304 (matching
   If-None-Match), best of two alternated runs each, and their ratio (304 req/s over 200
   req/s; at least 1.00x is the goal);
2. the first request after an unrelated upload moved the journal serial: the 304 (the page's
   stamp is read again, nothing is rendered) against a 200 that renders the page anew (an
   upload to the project itself), median of --rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pypi_simple import (  # noqa: E402
    JSON_V1,
    Client,
    Procs,
    WrkResult,
    log,
    ratio,
    seed_packhouse,
    start_packhouse,
    wrk,
)


def _etag(client: Client, path: str, headers: dict[str, str]) -> str:
    status, got, _ = client.request("GET", path, headers=headers)
    if status != 200:
        raise SystemExit(f"GET {path} answered {status}")
    return got["etag"]


def _timed(client: Client, path: str, headers: dict[str, str], want: int) -> float:
    start = time.perf_counter()
    status, _, _ = client.request("GET", path, headers=headers)
    elapsed = (time.perf_counter() - start) * 1000
    if status != want:
        raise SystemExit(f"GET {path} answered {status}, not {want}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=200, help="files of the project [200]")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run [8]")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections [16]")
    parser.add_argument("--rounds", type=int, default=15, help="rounds of part 2 [15]")
    args = parser.parse_args()

    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="packhouse-revalidate-"))
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    try:
        data, public, private = start_packhouse(procs, tmp, "0")
        for repo in ("bench", "main"):
            seed_packhouse(data, repo, [("revalidate-me", args.files, 0)])
        client = Client(public.port)
        emit(
            f"Packhouse, one core; wrk -t1 -c{args.connections} -d{args.duration}s on the other;"
            f" project page of {args.files} files"
        )
        emit("| page | cached 200 req/s (p99) | 304 req/s (p99) | 304 / 200 |")
        emit("| --- | --- | --- | --- |")
        for server in (public, private):
            cases = {
                "project HTML": (f"{server.simple}revalidate-me/", {}),
                "project JSON": (f"{server.simple}revalidate-me/", {"Accept": JSON_V1}),
                "project list": (server.simple, {}),
                "JSON API": (
                    server.simple.replace("/simple/", "/pypi/") + "revalidate-me/json",
                    {},
                ),
            }
            for what, (path, extra) in cases.items():
                headers = {**server.headers, **extra}
                tag = _etag(client, path, headers)
                url = f"http://127.0.0.1:{server.port}{path}"
                # Alternated, best of two each: the machine is shared, so one slow run
                # must not decide a ratio.
                runs: dict[str, list[WrkResult]] = {"200": [], "304": []}
                for _ in range(2):
                    for kind, sent in (
                        ("200", headers),
                        ("304", {**headers, "If-None-Match": tag}),
                    ):
                        runs[kind].append(
                            wrk(
                                url,
                                sent,
                                tmp,
                                cpu="1",
                                duration=args.duration,
                                connections=args.connections,
                            )
                        )
                ok = max(runs["200"], key=lambda r: r.rps)
                nm = max(runs["304"], key=lambda r: r.rps)
                if ok.errors or nm.errors:
                    log(f"{server.name} {what}: wrk counted errors {ok.errors} / {nm.errors}")
                emit(
                    f"| {server.name}: {what} | {ok.rps:,.0f} ({ok.p99_ms:.1f} ms) |"
                    f" {nm.rps:,.0f} ({nm.p99_ms:.1f} ms) | {ratio(nm.rps, ok.rps)} |"
                )

        emit("")
        emit(f"First request after the serial moved (median of {args.rounds} rounds, ms):")
        path = f"{public.simple}revalidate-me/"
        first: dict[str, list[float]] = {"304 after unrelated upload": [], "200 rendered": []}
        for round_ in range(args.rounds):
            tag = _etag(client, path, {})
            seed_packhouse(data, "bench", [(f"unrelated-{round_}", 1, 0)])
            client.request("GET", "/healthz")
            first["304 after unrelated upload"].append(
                _timed(client, path, {"If-None-Match": tag}, 304)
            )
            seed_packhouse(data, "bench", [("revalidate-me", 1, args.files + round_)])
            first["200 rendered"].append(_timed(client, path, {}, 200))
        medians = {k: statistics.median(v) for k, v in first.items()}
        for k, v in medians.items():
            emit(f"- {k}: {v:.2f} ms")
        emit(
            "- 304 time / rendered 200 time: "
            + ratio(medians["304 after unrelated upload"], medians["200 rendered"])
        )
    finally:
        procs.stop_all()
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
