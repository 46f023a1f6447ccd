"""The hot paths of this checkout against another one's, side by side: is a change free?

    git worktree add /tmp/before <commit>            # or: git archive <commit> | tar -x -C DIR
    .venv/bin/python bench/ab.py --before /tmp/before --rounds 3 --duration 5
    .venv/bin/python bench/ab.py --before /tmp/a --after /tmp/b   # two snapshots, not this tree

Two servers run this venv's packages; the "before" one imports Packhouse from
`--before`/src (PYTHONPATH), the "after" one from this checkout. Each gets the same data over
HTTP: one PyPI project of --files wheels and a conda channel of --packages packages. wrk then
asks each, alternately, for the project's PEP 691 page (authorised, with and without the
page's ETag: a 200 and a 304) and for noarch/repodata.json: --rounds rounds of --duration
seconds per server and path, interleaved so the machine's drift hits both alike. Printed:
the median requests/s of each and after/before.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conda_synth import package_bytes  # noqa: E402
from pypi_simple import JSON_V1, basic, free_port, wait_http, wrk  # noqa: E402
from wheelgen import wheel_bytes, wheel_filename  # noqa: E402

BIN = Path(sys.executable).parent
PASSWORD = "bench-admin-pw"


def start(src: Path | None, tmp: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PACKHOUSE_ADMIN_PASSWORD": PASSWORD, "PACKHOUSE_LOG_LEVEL": "warning"}
    if src is not None:
        env["PYTHONPATH"] = str(src / "src")
    argv = [
        str(BIN / "python"), "-m", "packhouse", "serve", "--data", str(tmp / name),
        "--port", str(port), "--no-access-log",
    ]  # fmt: skip
    log = (tmp / f"{name}.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_http(port, "/healthz")
    return process, f"http://127.0.0.1:{port}"


def seed(url: str, files: int, packages: int) -> str:
    """Upload the data; returns the project page's ETag."""
    with httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=60) as client:
        for i in range(files):
            version = f"1.{i}"
            name = wheel_filename("ab-pkg", version)
            client.post(
                "/pypi/main/",
                data={":action": "file_upload", "name": "ab-pkg", "version": version},
                files={"content": (name, wheel_bytes("ab-pkg", version))},
            ).raise_for_status()
        for i in range(packages):
            filename, data = package_bytes(f"ab-conda-{i % 50}", f"1.{i}")
            client.post(
                "/api/v1/repositories/conda/main/packages",
                files={"file": (filename, data, "application/octet-stream")},
            ).raise_for_status()
        page = client.get("/pypi/main/simple/ab-pkg/", headers={"Accept": JSON_V1})
        client.get("/conda/main/noarch/repodata.json").raise_for_status()
        return page.headers["etag"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument("--after", type=Path, help="a checkout in place of this one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--packages", type=int, default=200)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    auth = basic("admin", PASSWORD)
    with tempfile.TemporaryDirectory(prefix="packhouse-ab-") as scratch:
        tmp = Path(scratch)
        servers = {
            "before": start(args.before, tmp, "before"),
            "after": start(args.after, tmp, "after"),
        }
        try:
            etags = {k: seed(url, args.files, args.packages) for k, (_, url) in servers.items()}
            cases = {
                "simple page 200": ("/pypi/main/simple/ab-pkg/", {"Accept": JSON_V1}),
                "simple page 304": ("/pypi/main/simple/ab-pkg/", {"Accept": JSON_V1}),
                "repodata.json": ("/conda/main/noarch/repodata.json", {}),
            }
            results: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.rounds):
                for case, (path, headers) in cases.items():
                    for which, (_, url) in servers.items():
                        sent = {**headers, "Authorization": auth}
                        if case.endswith("304"):
                            sent["If-None-Match"] = etags[which]
                        got = wrk(
                            url + path, sent, tmp, cpu="0-1", duration=args.duration,
                            connections=args.connections,
                        )  # fmt: skip
                        if got.errors:
                            raise SystemExit(f"{which} {case}: {got.errors} errors")
                        results.setdefault((case, which), []).append(got.rps)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=30)
    print(f"\n{args.rounds} rounds x {args.duration} s, wrk -c{args.connections}, median req/s")
    print(f"{'path':<18} {'before':>10} {'after':>10} {'after/before':>13}")
    for case in cases:
        before = statistics.median(results[(case, "before")])
        after = statistics.median(results[(case, "after")])
        print(f"{case:<18} {before:>10.0f} {after:>10.0f} {after / before:>13.2f}")


if __name__ == "__main__":
    main()
