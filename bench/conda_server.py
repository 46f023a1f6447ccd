"""Hosted conda channel: how soon an upload is in the served repodata `.zst` and its shard.

Seeds a channel with N synthetic packages (bench/conda_synth.py: half `.conda`, half
`.tar.bz2`, noarch/linux-64/osx-64) in-process through the upload service, starts the real
`packhouse serve`, warms every subdir's repodata.json.zst and shard index, then uploads
packages over HTTP one at a time and times, from each upload's response, the requests for
the subdir's `repodata.json.zst` (checked to hold the new file), the shard index and the
new name's shard. Reports the server's peak RSS (VmHWM).

    .venv/bin/python bench/conda_server.py --packages 20000
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import httpx
import msgpack
import orjson
import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from packhouse.config import Settings  # noqa: E402
from packhouse.services.access import Principal  # noqa: E402
from packhouse.services.bootstrap import first_start  # noqa: E402
from packhouse.services.conda_uploads import upload_conda  # noqa: E402
from packhouse.services.repos import create_repository  # noqa: E402
from packhouse.storage.base import IncomingFile  # noqa: E402
from packhouse.types import Format  # noqa: E402
from packhouse.wiring import Services, build_context  # noqa: E402

PASSWORD = "bench-admin-password"
SUBDIRS = ("noarch", "linux-64", "osx-64")


def _synth() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conda_synth", ROOT / "bench" / "conda_synth.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed(data: Path, n: int) -> float:
    synth = _synth()
    settings = Settings(data=data, admin_password=PASSWORD)  # type: ignore[arg-type]
    svc = Services.of(build_context(settings))
    first_start(svc.ctx)
    create_repository(svc.ctx, actor="bench", name="bench", fmt=Format.CONDA, public=True)
    repo = svc.catalog.get(Format.CONDA, "bench")
    who = Principal("admin", 1, True)
    per_name = 5 * len(SUBDIRS)
    started = time.perf_counter()
    for i in range(n):
        subdir = SUBDIRS[i % len(SUBDIRS)]
        name_index = i // per_name
        filename, blob = synth.package_bytes(
            f"synth-{name_index}",
            f"1.{i % per_name}.{i}",
            "h0_0",
            subdir=subdir,
            extension=".conda" if i % 2 == 0 else ".tar.bz2",
            depends=[f"synth-{name_index - 1} >=1.0"] if name_index else [],
            timestamp=1_700_000_000_000 + i,
        )
        with IncomingFile(svc.ctx.tmp_dir, 1 << 30) as incoming:
            incoming.write(blob)
            incoming.finish()
            upload_conda(svc.ctx, repo, who, filename, incoming, subdir)
        if (i + 1) % 2000 == 0:
            print(f"  seeded {i + 1}/{n}", file=sys.stderr)
    svc.close()
    return time.perf_counter() - started


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=20_000)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args()
    synth = _synth()
    with tempfile.TemporaryDirectory(prefix="packhouse-bench-") as tmp:
        data = Path(tmp) / "data"
        print(f"seeding {args.packages} packages ...", file=sys.stderr)
        seconds = seed(data, args.packages)
        print(f"seeded in {seconds:.1f} s", file=sys.stderr)
        env = {**os.environ, "PACKHOUSE_DATA": str(data), "PACKHOUSE_ACCESS_LOG": "false"}
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "packhouse"), "serve", "--port", str(args.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{args.port}/conda/bench"
        try:
            for _ in range(100):
                try:
                    httpx.get(f"http://127.0.0.1:{args.port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            with (
                httpx.Client(timeout=120) as anon,
                httpx.Client(timeout=120, auth=("admin", PASSWORD)) as admin,
            ):
                cold = time.perf_counter()
                for subdir in SUBDIRS:
                    anon.get(f"{base}/{subdir}/repodata.json.zst").raise_for_status()
                    anon.get(f"{base}/{subdir}/repodata_shards.msgpack.zst").raise_for_status()
                cold = time.perf_counter() - cold
                sizes = {s: len(anon.get(f"{base}/{s}/repodata.json").content) for s in SUBDIRS}
                timings = []
                for k in range(args.uploads):
                    subdir = SUBDIRS[k % len(SUBDIRS)]
                    name = f"synth-{k % 50}"
                    filename, blob = synth.package_bytes(
                        name, f"9.{k}", "h0_0", subdir=subdir, timestamp=1_800_000_000_000 + k
                    )
                    response = admin.put(f"{base}/{subdir}/{filename}", content=blob)
                    assert response.status_code == 201, response.text
                    start = time.perf_counter()
                    zst = anon.get(f"{base}/{subdir}/repodata.json.zst").content
                    index = anon.get(f"{base}/{subdir}/repodata_shards.msgpack.zst").content
                    digest = msgpack.unpackb(zstandard.decompress(index))["shards"][name]
                    shard = anon.get(f"{base}/{subdir}/shards/{digest.hex()}.msgpack.zst")
                    timings.append(time.perf_counter() - start)
                    shard.raise_for_status()
                    doc = orjson.loads(zstandard.decompress(zst))
                    assert filename in doc["packages.conda"], "the upload is not in repodata"
            rss = peak_rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    ms = sorted(t * 1000 for t in timings)
    print(f"packages: {args.packages}; repodata.json sizes: {sizes}")
    print(f"first .zst + shard index of all subdirs (cold): {cold * 1000:.0f} ms")
    print(
        f"upload -> .zst + shard index + shard ready: median {statistics.median(ms):.0f} ms,"
        f" p90 {ms[int(len(ms) * 0.9) - 1]:.0f} ms, max {ms[-1]:.0f} ms ({len(ms)} uploads)"
    )
    print(f"server peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
