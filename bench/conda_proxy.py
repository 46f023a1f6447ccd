"""Conda proxy: memory and warm throughput of a group over a 100,000-record upstream subdir.

Generates an upstream channel whose linux-64 holds N records (N/5 names, five versions each,
half `.conda`, half `.tar.bz2`, with depends, constrains, license, hashes and sizes), writes
`repodata.json` and `.zst` as `conda index` would, and serves that static tree with
`python -m http.server` on loopback. Then, one server at a time, each `packhouse serve`
pinned to core 0 and `wrk` to core 1:

1. proxy: a conda proxy of that channel and the group `grp` = main + proxy. The cold
   `repodata.json.zst` (fetch, stream into per-name records, render), the cold shard index,
   then `wrk` against the group's `repodata.json.zst`, shard index and one shard, while the
   server's RSS is sampled; its peak (VmHWM) is reported.
2. hosted: a hosted channel holding the same N records (inserted straight into the
   database: reads need the records, not the package files), and the same `wrk` runs.

Prints requests per second side by side, with proxy/hosted ratios, and the peak RSS of each.

    .venv/bin/python bench/conda_proxy.py --records 100000 --seconds 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgpack
import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from packhouse.config import Settings  # noqa: E402
from packhouse.db import artifact_store, journal_store, repository_store  # noqa: E402
from packhouse.db.artifact_store import NewArtifact  # noqa: E402
from packhouse.formats.conda.records import dumps  # noqa: E402
from packhouse.services.bootstrap import first_start  # noqa: E402
from packhouse.services.repos import create_repository  # noqa: E402
from packhouse.types import Format, RepoKind  # noqa: E402
from packhouse.wiring import Services, build_context  # noqa: E402

PASSWORD = "bench-admin-password"
SUBDIR = "linux-64"
VERSIONS = 5


def records(n: int) -> dict[str, dict[str, Any]]:
    """{filename: record} of N synthetic records, deterministic."""
    rng = random.Random(7)
    found: dict[str, dict[str, Any]] = {}
    names = max(1, n // VERSIONS)
    for i in range(n):
        name = f"pkg-{i % names}"
        version = f"1.{i // names}.0"
        build = f"h{i % 97:07x}_0"
        extension = ".conda" if i % 2 == 0 else ".tar.bz2"
        deps = [f"pkg-{rng.randrange(names)} >=1.0", "libgcc-ng >=12", "python >=3.9,<3.13"]
        found[f"{name}-{version}-{build}{extension}"] = {
            "build": build,
            "build_number": 0,
            "constrains": [f"pkg-{rng.randrange(names)} <2"],
            "depends": deps,
            "license": "BSD-3-Clause",
            "license_family": "BSD",
            "md5": hashlib.md5(str(i).encode()).hexdigest(),  # noqa: S324 (a record field)
            "name": name,
            "sha256": hashlib.sha256(str(i).encode()).hexdigest(),
            "size": 10_000 + i,
            "subdir": SUBDIR,
            "timestamp": 1_700_000_000_000 + i,
            "version": version,
        }
    return found


def write_upstream(root: Path, found: dict[str, dict[str, Any]]) -> int:
    doc = {
        "info": {"subdir": SUBDIR},
        "packages": {f: r for f, r in found.items() if f.endswith(".tar.bz2")},
        "packages.conda": {f: r for f, r in found.items() if f.endswith(".conda")},
        "removed": [],
        "repodata_version": 1,
    }
    body = json.dumps(doc, sort_keys=True, indent=1).encode()
    for subdir, data in ((SUBDIR, body), ("noarch", b'{"info":{"subdir":"noarch"}}')):
        (root / subdir).mkdir(parents=True, exist_ok=True)
        (root / subdir / "repodata.json").write_bytes(data)
        (root / subdir / "repodata.json.zst").write_bytes(zstandard.compress(data, 16))
    return len(body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the process exited early")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def prepare(data: Path) -> Services:
    settings = Settings(data=data, admin_password=PASSWORD)  # type: ignore[arg-type]
    svc = Services.of(build_context(settings))
    first_start(svc.ctx)
    return svc


def seed_hosted(data: Path, found: dict[str, dict[str, Any]]) -> None:
    svc = prepare(data)
    create_repository(svc.ctx, actor="bench", name="hosted", fmt=Format.CONDA, public=True)
    repo = svc.catalog.get(Format.CONDA, "hosted")
    now = datetime.now(UTC)
    with svc.ctx.db.write() as conn:
        serial = journal_store.append(
            conn, actor="bench", action="bench.seed", repository="conda/hosted"
        )
        projects: dict[str, int] = {}
        for filename, record in found.items():
            name = record["name"]
            if name not in projects:
                project = repository_store.ensure_project(conn, repo.id, name, name, serial)
                projects[name] = project.id
            new = NewArtifact(
                filename=filename,
                version=record["version"],
                packagetype="conda" if filename.endswith(".conda") else "tar.bz2",
                sha256=record["sha256"],
                md5=record["md5"],
                blake2b_256="0" * 64,
                size=record["size"],
                uploader="bench",
                upload_time=now,
                subdir=SUBDIR,
                record=dumps(record),
            )
            artifact_store.add(conn, repo.id, projects[name], new, serial)
        repository_store.touch(conn, repo.id, serial)
    svc.close()


def seed_proxy(data: Path, upstream: str) -> None:
    svc = prepare(data)
    create_repository(
        svc.ctx, actor="bench", name="forge", fmt=Format.CONDA, kind=RepoKind.PROXY,
        upstream_url=upstream, public=True,
    )  # fmt: skip
    create_repository(
        svc.ctx, actor="bench", name="grp", fmt=Format.CONDA, bases=["main", "forge"],
        public=True,
    )  # fmt: skip
    svc.close()


class Server:
    """`packhouse serve` pinned to core 0, its RSS sampled while it runs."""

    def __init__(self, data: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (data.parent / f"{data.name}.log").open("wb")
        argv = ["taskset", "-c", "0", str(ROOT / ".venv" / "bin" / "packhouse"), "serve"]
        argv += ["--port", str(self.port), "--data", str(data)]
        self.process = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PACKHOUSE_ADMIN_PASSWORD": PASSWORD, **env},
        )
        wait_for(f"{self.url}/healthz", self.process)
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _status(self, key: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.samples.append(self._status("VmRSS:"))

    def peak_rss_mib(self) -> float:
        return self._status("VmHWM:")

    def stop(self) -> None:
        self._stop.set()
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def wrk(url: str, seconds: int) -> float:
    result = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c8", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if not match or "Non-2xx" in result.stdout:
        raise SystemExit(f"wrk {url}:\n{result.stdout}")
    return float(match.group(1))


def timed_get(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    response = httpx.get(url, timeout=600)
    response.raise_for_status()
    return time.perf_counter() - started, response.content


def run(server: Server, channel: str, seconds: int) -> dict[str, float]:
    base = f"{server.url}/conda/{channel}/{SUBDIR}"
    cold_zst, zst = timed_get(f"{base}/repodata.json.zst")
    doc = json.loads(zstandard.ZstdDecompressor().stream_reader(zst).read())
    count = len(doc["packages"]) + len(doc["packages.conda"])
    del doc
    cold_index, index = timed_get(f"{base}/repodata_shards.msgpack.zst")
    shards = msgpack.unpackb(zstandard.ZstdDecompressor().stream_reader(index).read())["shards"]
    shard = f"{base}/shards/{shards['pkg-7'].hex()}.msgpack.zst"
    httpx.get(shard, timeout=60).raise_for_status()
    return {
        "records served": count,
        "cold repodata.json.zst (s)": cold_zst,
        "cold shard index (s)": cold_index,
        "repodata.json.zst (req/s)": wrk(f"{base}/repodata.json.zst", seconds),
        "shard index (req/s)": wrk(f"{base}/repodata_shards.msgpack.zst", seconds),
        "one shard (req/s)": wrk(shard, seconds),
        "repodata.json.zst size (MB)": len(zst) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-conda-proxy-") as tmp:
        root = Path(tmp)
        found = records(args.records)
        size = write_upstream(root / "upstream", found)
        print(f"upstream {SUBDIR}: {len(found)} records, repodata.json {size / 1e6:.1f} MB")
        port = free_port()
        static = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
            cwd=root / "upstream",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        results: dict[str, dict[str, float]] = {}
        peaks: dict[str, float] = {}
        try:
            wait_for(f"http://127.0.0.1:{port}/noarch/repodata.json", static)
            seed_proxy(root / "proxy", f"http://127.0.0.1:{port}")
            env = {"PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS": '["127.0.0.1/32"]'}
            server = Server(root / "proxy", env)
            try:
                results["proxy"] = run(server, "grp", args.seconds)
                peaks["proxy"] = server.peak_rss_mib()
            finally:
                server.stop()
            seed_hosted(root / "hosted", found)
            del found
            server = Server(root / "hosted", {})
            try:
                results["hosted"] = run(server, "hosted", args.seconds)
                peaks["hosted"] = server.peak_rss_mib()
            finally:
                server.stop()
        finally:
            static.terminate()
            static.wait(timeout=30)
    print("\n| measure | proxy (group) | hosted | proxy/hosted |\n| --- | ---: | ---: | ---: |")
    for key in results["proxy"]:
        p, h = results["proxy"][key], results["hosted"][key]
        ratio = f"{p / h:.2f}x" if h else "-"
        print(f"| {key} | {p:,.2f} | {h:,.2f} | {ratio} |")
    print(f"| server peak RSS (MiB) | {peaks['proxy']:.0f} | {peaks['hosted']:.0f} | - |")


if __name__ == "__main__":
    main()
