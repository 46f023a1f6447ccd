"""Load: a mix of what pip, uv, conda/pixi and CI do, against a real server on loopback,
for a bounded time; zero errors expected, latency per kind and the server's memory.

    .venv/bin/python bench/load.py                       # 60 s, 16 connections
    .venv/bin/python bench/load.py --duration 10 --concurrency 8

Starts `packhouse serve` on a fresh data directory and seeds it over HTTP (20 PyPI
projects x 5 wheels, 300 conda packages over noarch and linux-64). Then `--concurrency`
asyncio workers (httpx, one keep-alive connection each) pick requests by weight:

- simple pages, PEP 691 JSON and PEP 503 HTML, half of them revalidated with the ETag the
  worker saw last (If-None-Match, as pip and uv do: 304 or a new page);
- conda CEP 16: the shard index (revalidated likewise) and one package's shard;
  repodata.json.zst now and then;
- downloads of wheels and conda packages (checked against their sha256);
- uploads: new wheels through the legacy API into the projects being read and new conda
  packages PUT into the subdirs being read, so pages and shards change during the run
  (`--same-uploads`: seeded files sent again, `--read-only`: none).

Every answer is checked: the expected status, pages parsed whole. Reported: errors (any
unexpected status, body that does not parse, transport error), p50/p99 per kind,
requests/s, and the server's RSS at start, middle and end (flat memory: end within a few
MiB of the middle). Exit status 1 when there was an error.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgpack
import orjson
import zstandard

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conda_synth import package_bytes  # noqa: E402 (the bench folder is put on the path first)
from crash_rounds import ADMIN_PASSWORD, Server, Upload, multipart_pypi  # noqa: E402
from wheelgen import wheel_bytes, wheel_filename  # noqa: E402

SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
SUBDIRS = ("noarch", "linux-64")
PROJECTS = [f"load-{i:02d}" for i in range(20)]
CONDA_NAMES = [f"loadpkg-{i:02d}" for i in range(30)]
WEIGHTS = {
    "simple_json": 30,
    "simple_html": 10,
    "shard_index": 12,
    "shard": 20,
    "repodata_zst": 2,
    "download_wheel": 10,
    "download_conda": 8,
    "upload_wheel": 4,
    "upload_conda": 4,
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Files:
    """What exists: wheels (project, filename, sha256) and conda packages (subdir, ...)."""

    wheels: list[tuple[str, str, str]] = field(default_factory=list)
    packages: list[tuple[str, str, str]] = field(default_factory=list)
    seeded: list[Upload] = field(default_factory=list)  # kept to send again (--same-uploads)
    same: bool = False  # uploads send seeded files again: the upload path, no new data
    counter: int = 0

    def version(self) -> str:
        self.counter += 1
        return f"9.{self.counter}"


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    not_modified: int = 0

    def error(self, kind: str, text: str) -> None:
        self.errors[kind].append(text)


def wheel_upload(files: Files, project: str) -> Upload:
    version = files.version()
    data = wheel_bytes(project, version, summary=f"load {uuid.uuid4().hex}")
    return Upload("pypi-small", wheel_filename(project, version), data)


def conda_upload(files: Files, rng: random.Random) -> Upload:
    name = rng.choice(CONDA_NAMES)
    subdir = rng.choice(SUBDIRS)
    version = files.version()
    content = {f"share/{name}/{version}.txt": rng.randbytes(512)}
    filename, data = package_bytes(name, version, "0", subdir=subdir, files=content)
    return Upload("conda-put", filename, data, subdir)


async def post_wheel(client: httpx.AsyncClient, upload: Upload) -> httpx.Response:
    boundary = uuid.uuid4().hex
    head, tail = multipart_pypi(upload, boundary)
    return await client.post(
        "/pypi/main/",
        content=head + upload.data + tail,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


class Worker:
    def __init__(self, url: str, files: Files, stats: Stats, rng: random.Random) -> None:
        self.client = httpx.AsyncClient(
            base_url=url,
            auth=("admin", ADMIN_PASSWORD),
            timeout=60,
            limits=httpx.Limits(max_connections=1),
        )
        self.files = files
        self.stats = stats
        self.rng = rng
        self.etags: dict[str, str] = {}
        self.shards: dict[str, dict[str, bytes]] = {}
        kinds = list(WEIGHTS)
        self.kinds = kinds
        self.weights = [WEIGHTS[k] for k in kinds]
        self.actions: dict[str, Callable[[], Awaitable[None]]] = {
            k: getattr(self, k) for k in kinds
        }

    async def run(self, until: float) -> None:
        try:
            while time.monotonic() < until:
                kind = self.rng.choices(self.kinds, self.weights)[0]
                start = time.perf_counter()
                try:
                    await self.actions[kind]()
                except (httpx.TransportError, ValueError, KeyError) as exc:
                    self.stats.error(kind, f"{type(exc).__name__}: {exc}")
                    continue
                self.stats.latencies[kind].append((time.perf_counter() - start) * 1000)
        finally:
            await self.client.aclose()

    async def _page(self, kind: str, path: str, headers: dict[str, str]) -> bytes | None:
        """GET a page, revalidating half the time; the body of a 200, None for a 304."""
        key = path + headers.get("Accept", "")
        sent = dict(headers)
        if key in self.etags and self.rng.random() < 0.5:
            sent["If-None-Match"] = self.etags[key]
        response = await self.client.get(path, headers=sent)
        if response.status_code == 304:
            self.stats.not_modified += 1
            return None
        if response.status_code != 200:
            raise ValueError(f"{path} answered {response.status_code}")
        if "etag" in response.headers:
            self.etags[key] = response.headers["etag"]
        return response.content

    async def simple_json(self) -> None:
        project = self.rng.choice(PROJECTS)
        body = await self._page("simple_json", f"/pypi/main/simple/{project}/", SIMPLE_JSON)
        if body is not None and not orjson.loads(body)["files"]:
            raise ValueError(f"{project}'s page lists no files")

    async def simple_html(self) -> None:
        project = self.rng.choice(PROJECTS)
        body = await self._page("simple_html", f"/pypi/main/simple/{project}/", {})
        if body is not None and b"</html>" not in body:
            raise ValueError(f"{project}'s HTML page is not whole")

    async def shard_index(self) -> None:
        subdir = self.rng.choice(SUBDIRS)
        path = f"/conda/main/{subdir}/repodata_shards.msgpack.zst"
        body = await self._page("shard_index", path, {})
        if body is not None:
            index = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(body))
            self.shards[subdir] = index["shards"]

    async def shard(self) -> None:
        subdir = self.rng.choice(SUBDIRS)
        if subdir not in self.shards:
            await self.shard_index()
            return
        shards = self.shards[subdir]
        name = self.rng.choice(sorted(shards))
        response = await self.client.get(
            f"/conda/main/{subdir}/shards/{shards[name].hex()}.msgpack.zst"
        )
        if response.status_code == 404:
            return  # replaced by an upload since the index was read: conda reads the index again
        if response.status_code != 200:
            raise ValueError(f"shard {name} answered {response.status_code}")
        if hashlib.sha256(response.content).digest() != shards[name]:
            raise ValueError(f"shard {name} does not match its digest")
        msgpack.unpackb(zstandard.ZstdDecompressor().decompress(response.content))

    async def repodata_zst(self) -> None:
        subdir = self.rng.choice(SUBDIRS)
        body = await self._page("repodata_zst", f"/conda/main/{subdir}/repodata.json.zst", {})
        if body is not None:
            doc = orjson.loads(
                zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 30)
            )
            if not doc["packages.conda"]:
                raise ValueError(f"{subdir}/repodata.json.zst lists no packages")

    async def _download(self, path: str, sha: str) -> None:
        response = await self.client.get(path)
        if response.status_code != 200:
            raise ValueError(f"{path} answered {response.status_code}")
        if hashlib.sha256(response.content).hexdigest() != sha:
            raise ValueError(f"{path} does not match its sha256")

    async def download_wheel(self) -> None:
        _, filename, sha = self.rng.choice(self.files.wheels)
        await self._download(f"/files/{sha}/{filename}", sha)

    async def download_conda(self) -> None:
        subdir, filename, sha = self.rng.choice(self.files.packages)
        await self._download(f"/conda/main/{subdir}/{filename}", sha)

    def _again(self, conda: bool) -> Upload:
        return self.rng.choice([u for u in self.files.seeded if (u.subdir is not None) == conda])

    async def upload_wheel(self) -> None:
        project = self.rng.choice(PROJECTS)
        upload = self._again(False) if self.files.same else wheel_upload(self.files, project)
        response = await post_wheel(self.client, upload)
        if response.status_code != 200:
            raise ValueError(f"upload of {upload.filename}: {response.status_code} {response.text}")
        if not self.files.same:
            self.files.wheels.append((project, upload.filename, upload.sha256))

    async def upload_conda(self) -> None:
        if self.files.same:
            again = self._again(True)
            response = await self.client.put(
                f"/conda/main/{again.subdir}/{again.filename}", content=again.data
            )
            if response.status_code != 200:  # "already there with the same contents"
                raise ValueError(f"{again.filename} again: {response.status_code} {response.text}")
            return
        upload = conda_upload(self.files, self.rng)
        response = await self.client.put(
            f"/conda/main/{upload.subdir}/{upload.filename}", content=upload.data
        )
        if response.status_code != 201:
            raise ValueError(f"upload of {upload.filename}: {response.status_code} {response.text}")
        assert upload.subdir is not None
        self.files.packages.append((upload.subdir, upload.filename, upload.sha256))


async def seed(url: str, files: Files, rng: random.Random, wheels: int, packages: int) -> None:
    async with httpx.AsyncClient(base_url=url, auth=("admin", ADMIN_PASSWORD), timeout=60) as c:
        for project in PROJECTS:
            for _ in range(wheels):
                upload = wheel_upload(files, project)
                response = await post_wheel(c, upload)
                response.raise_for_status()
                files.wheels.append((project, upload.filename, upload.sha256))
                files.seeded.append(upload)
        for _ in range(packages):
            upload = conda_upload(files, rng)
            response = await c.put(
                f"/conda/main/{upload.subdir}/{upload.filename}", content=upload.data
            )
            response.raise_for_status()
            assert upload.subdir is not None
            files.packages.append((upload.subdir, upload.filename, upload.sha256))
            files.seeded.append(upload)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace, server: Server) -> int:
    assert server.process is not None
    pid = server.process.pid
    rng = random.Random(args.seed)
    files = Files(same=args.same_uploads)
    started = time.monotonic()
    await seed(server.url, files, rng, args.wheels, args.packages)
    log(
        f"seeded {len(files.wheels)} wheels, {len(files.packages)} conda packages"
        f" in {time.monotonic() - started:.1f} s"
    )
    stats = Stats()
    rss = {"start": rss_mib(pid)}
    until = time.monotonic() + args.duration
    workers = [
        Worker(server.url, files, stats, random.Random(rng.random()))
        for _ in range(args.concurrency)
    ]

    series: list[float] = []

    async def sample() -> None:  # every tenth of the run; the middle one reported apart
        for i in range(1, 10):
            await asyncio.sleep(args.duration / 10)
            series.append(rss_mib(pid))
            if i == 5:
                rss["middle"] = series[-1]

    begin = time.monotonic()
    await asyncio.gather(sample(), *(w.run(until) for w in workers))
    elapsed = time.monotonic() - begin
    rss["end"] = rss_mib(pid)
    total = sum(len(v) for v in stats.latencies.values())
    errors = sum(len(v) for v in stats.errors.values())
    lines = [
        f"{args.duration:.0f} s, {args.concurrency} connections: {total} requests"
        f" ({total / elapsed:.0f}/s), {errors} errors, {stats.not_modified} answered 304;"
        f" server RSS {rss['start']:.0f} / {rss['middle']:.0f} / {rss['end']:.0f} MiB"
        " (start / middle / end)",
        "RSS every tenth of the run (MiB): " + " ".join(f"{v:.0f}" for v in [*series, rss["end"]]),
        "",
        "| kind | requests | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind in WEIGHTS:
        values = stats.latencies.get(kind, [])
        if not values:
            continue
        lines.append(
            f"| {kind} | {len(values)} | {statistics.median(values):.1f} |"
            f" {percentile(values, 0.99):.1f} | {len(stats.errors.get(kind, []))} |"
        )
    print("\n".join(lines))
    for kind, texts in stats.errors.items():
        for text in texts[:5]:
            print(f"  error {kind}: {text}")
    return 1 if errors else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--wheels", type=int, default=5, help="per project, seeded")
    parser.add_argument("--packages", type=int, default=300, help="conda packages, seeded")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--read-only", action="store_true", help="no uploads during the run")
    parser.add_argument(
        "--same-uploads",
        action="store_true",
        help="uploads send seeded files again (answered 'already there'): the upload path"
        " without new data, to tell a leak from growth that follows the data",
    )
    args = parser.parse_args()
    if args.read_only:
        WEIGHTS["upload_wheel"] = WEIGHTS["upload_conda"] = 0
    with tempfile.TemporaryDirectory(prefix="packhouse-load-") as tmp:
        server = Server(Path(tmp) / "data", "load-server.log")
        server.start()
        try:
            status = asyncio.run(run(args, server))
        finally:
            server.stop()
            errors = server.errors()
            for line in errors[:10]:
                print(f"  server logged: {line[:300]}")
    sys.exit(1 if status or errors else 0)


if __name__ == "__main__":
    main()
