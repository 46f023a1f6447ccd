"""Benchmark Packhouse's PyPI proxy against a hosted repository and against its upstream.

    .venv/bin/python bench/proxy.py                      # about 5 minutes
    .venv/bin/python bench/proxy.py --duration 3 --page-rounds 5 --rounds 5

One run starts two Packhouse processes: the *upstream* (a plain public index, on CPU 1) and
the *company* server (on CPU 0) with a hosted repository `main`, a proxy `up` of the
upstream and a group `all` = main + up. The same number of synthetic wheels (wheelgen.py) is
uploaded to the company's `main` (project `hosted-a`) and to the upstream (project
`proxied-b`), plus 20 small projects for installs upstream. Then:

1. throughput and p99 of GET .../simple/<project>/ (HTML and JSON) with wrk on CPU 1: the
   hosted page `main/hosted-a`, and the warm proxied page through the group `all/proxied-b`
   and through the proxy alone `up/proxied-b`; ratio proxied / hosted (target >= 0.9);
2. `pip install --no-cache-dir` (then `uv pip install --no-cache`) of the 20 projects into a
   fresh venv: from the upstream
   directly, through the group with an empty proxy cache (cold: `packhouse cache prune`
   before each round), and through the group again (warm); ratios cold / direct (target
   <= 1.2) and warm / direct (target < 1.0).

On a machine shared with other work the load changes from one second to the next, so each
ratio is taken within a round, between figures measured one right after the other (the pages
of a round back to back, alternating which comes first; an install round's direct, cold and
warm installs), and the median and range of the rounds' ratios are printed. Each round's
figures are in the log.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pypi_simple import (  # noqa: E402 (the bench folder is put on the path first)
    ADMIN_PASSWORD,
    BIN,
    Client,
    Procs,
    basic,
    free_port,
    legacy_upload,
    log,
    run,
    wait_http,
    wrk,
)
from wheelgen import versions, wheel_bytes, wheel_filename  # noqa: E402

SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
TARGETS = {"warm_page": 0.9, "cold_install": 1.2, "warm_install": 1.0}
INSTALL_SET = [f"bench-dep-{i:02d}" for i in range(20)]
CLIENT_ENV = {
    "PIP_CONFIG_FILE": "/dev/null",
    "PIP_FIND_LINKS": "",
    "UV_NO_CONFIG": "1",
    "UV_PYTHON_DOWNLOADS": "never",
}


def start(procs: Procs, tmp: Path, name: str, cpu: str, env: dict[str, str]) -> tuple[Path, int]:
    data = tmp / name
    port = free_port()
    full = {**os.environ, "PACKHOUSE_ADMIN_PASSWORD": ADMIN_PASSWORD, **env}
    run([BIN / "packhouse", "db", "upgrade", "--data", data], env=full)
    procs.start(
        [
            "taskset", "-c", cpu, BIN / "packhouse", "serve", "--data", data,
            "--port", str(port), "--no-access-log",
        ],
        tmp / f"{name}.log",
        env=full,
    )  # fmt: skip
    wait_http(port, "/healthz")
    return data, port


def cli(data: Path, *args: str) -> None:
    env = {**os.environ, "PACKHOUSE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    run([BIN / "packhouse", *args, "--data", str(data)], env=env)


def upload(port: int, repo: str, project: str, count: int) -> None:
    client = Client(port)
    auth = basic("admin", ADMIN_PASSWORD)
    for version in list(versions(count)):
        name = wheel_filename(project, version)
        legacy_upload(client, f"/pypi/{repo}/", auth, name, wheel_bytes(project, version))


def timed(argv: list[str | Path]) -> float:
    start = time.perf_counter()
    out = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env={**os.environ, **CLIENT_ENV}
    )
    elapsed = time.perf_counter() - start
    if out.returncode:
        raise SystemExit(f"{argv[0]} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return elapsed


def install(tool: str, index: str, tmp: Path, label: str) -> float:
    """Seconds for `pip install` or `uv pip install` of INSTALL_SET into a fresh venv,
    without a client cache."""
    venv = tmp / f"venv-{label}-{time.monotonic_ns()}"
    env = {**os.environ, **CLIENT_ENV}
    run([BIN / "uv", "venv", "-q", "--seed", "--python", sys.executable, venv], env=env)
    python = venv / "bin" / "python"
    if tool == "pip":
        argv: list[str | Path] = [
            python, "-m", "pip", "install", "-q", "--no-cache-dir",
            "--disable-pip-version-check", "--index-url", index, *INSTALL_SET,
        ]  # fmt: skip
    else:
        argv = [
            BIN / "uv", "pip", "install", "-q", "--no-cache", "--python", python,
            "--index-url", index, *INSTALL_SET,
        ]  # fmt: skip
    return timed(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="wrk seconds per figure")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--files", type=int, default=40, help="files of the compared projects")
    parser.add_argument("--rounds", type=int, default=3, help="install rounds")
    parser.add_argument("--page-rounds", type=int, default=3, help="page throughput rounds")
    args = parser.parse_args()

    procs = Procs()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ph-bench-proxy-") as name:
        tmp = Path(name)
        try:
            up_data, up_port = start(procs, tmp, "upstream", "1", {})
            cli(up_data, "repo", "create", "public", "--public")
            upload(up_port, "public", "proxied-b", args.files)
            for project in INSTALL_SET:
                upload(up_port, "public", project, 1)

            env = {"PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS": '["127.0.0.1/32"]'}
            data, port = start(procs, tmp, "company", "0", env)
            upstream_index = f"http://127.0.0.1:{up_port}/pypi/public/simple/"
            cli(data, "repo", "grant", "main", ":anonymous:", "read")
            cli(data, "repo", "create", "up", "--upstream", upstream_index, "--public")
            cli(data, "repo", "create", "all", "--bases", "main,up", "--public")
            upload(port, "main", "hosted-a", args.files)
            log("servers ready")

            base = f"http://127.0.0.1:{port}"
            client = Client(port)
            pages = {
                "hosted main/hosted-a": "/pypi/main/simple/hosted-a/",
                "proxied all/proxied-b": "/pypi/all/simple/proxied-b/",
                "proxied up/proxied-b": "/pypi/up/simple/proxied-b/",
            }
            for path in pages.values():
                for headers in ({}, SIMPLE_JSON):
                    status, _ = client.get(path, headers)  # warm it
                    assert status == 200, (path, status)
            ratios: dict[tuple[str, str], list[float]] = {}
            for r in range(args.page_rounds):
                for kind, headers in (("html", {}), ("json", SIMPLE_JSON)):
                    order = list(pages.items())
                    if r % 2:
                        order.reverse()  # neither side always first
                    rps: dict[str, float] = {}
                    for label, path in order:
                        result = wrk(
                            base + path, headers, tmp, cpu="1",
                            duration=args.duration, connections=args.connections,
                        )  # fmt: skip
                        rps[label] = result.rps
                        log(
                            f"round {r + 1} {label:24} {kind:4}  {result.rps:9.0f} req/s  p99"
                            f" {result.p99_ms:6.2f} ms  errors {result.errors}"
                        )
                    for label in ("proxied all/proxied-b", "proxied up/proxied-b"):
                        ratio = rps[label] / rps["hosted main/hosted-a"]
                        ratios.setdefault((label, kind), []).append(ratio)
            for (label, kind), values in ratios.items():
                lines.append(
                    f"ratio {label} / hosted ({kind}), {len(values)} rounds: median"
                    f" {statistics.median(values):.2f}x, range {min(values):.2f}x-"
                    f"{max(values):.2f}x (target >= {TARGETS['warm_page']}x)"
                )

            group = f"{base}/pypi/all/simple/"
            for tool in ("pip", "uv"):
                direct, cold, warm = [], [], []
                for r in range(args.rounds):
                    cli(data, "cache", "prune", "--older-than", "0s", "--max-size", "0")
                    direct.append(install(tool, upstream_index, tmp, "direct"))
                    cold.append(install(tool, group, tmp, "cold"))
                    warm.append(install(tool, group, tmp, "warm"))
                    log(
                        f"{tool} round {r + 1}: direct {direct[-1]:.2f}s cold {cold[-1]:.2f}s"
                        f" warm {warm[-1]:.2f}s"
                    )
                d, c, w = (statistics.median(x) for x in (direct, cold, warm))
                cold_ratios = [c_ / d_ for c_, d_ in zip(cold, direct, strict=True)]
                warm_ratios = [w_ / d_ for w_, d_ in zip(warm, direct, strict=True)]
                lines.append(
                    f"{tool} install of {len(INSTALL_SET)} projects, median of {args.rounds}:"
                    f" upstream directly {d:.2f}s, through the proxy cold {c:.2f}s, warm"
                    f" {w:.2f}s; per round cold / direct median"
                    f" {statistics.median(cold_ratios):.2f}x, range {min(cold_ratios):.2f}x-"
                    f"{max(cold_ratios):.2f}x (target <= {TARGETS['cold_install']}x); warm /"
                    f" direct median {statistics.median(warm_ratios):.2f}x, range"
                    f" {min(warm_ratios):.2f}x-{max(warm_ratios):.2f}x (target <"
                    f" {TARGETS['warm_install']}x)"
                )
        finally:
            procs.stop_all()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
