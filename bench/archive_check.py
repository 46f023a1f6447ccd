"""How much of an upload the archive check takes, for the real files in ../shared/testdata.

For each wheel, sdist, .conda and .tar.bz2 there, it times, as medians of --rounds runs:

- check: the archive check alone, in this process (`read_metadata` for PyPI files, the
  zip/tar walk, entry points included; `read_package` for conda, info/ and the whole body,
  given the digests as the upload service gives them): the CPU the check costs;
- upload: the whole upload of the same file over HTTP to a running `packhouse serve`
  (SQLite, local blobs), as the client sees it: from sending the request to reading the
  answer, client encoding included. A new repository each round, and the stored blobs
  removed after each round, so every round writes the row and the blob (the same bytes
  again would find their blob stored and skip writing it);
- inflate: decompressing the whole archive stream without parsing it (bz2 for .tar.bz2, gzip
  for .tar.gz, zstd for both tarballs of a .conda; 0 for zips, of which only METADATA is
  inflated): the floor for any check that sees every member;
- hash: reading the file and computing sha256 + md5 + blake2b, as the server does while it
  streams the body to disk.

check/upload is the goal's share (under 10%) while the check runs after the upload arrived.
Where it runs beside the upload (services/streamed_checks.py: .tar.bz2, checked as it
arrives while its blob is stored), its CPU is no longer what the upload waits for, so the
share the check adds to an upload is measured by difference, side by side: with
`--before DIR` (another checkout, e.g. `git worktree add /tmp/before HEAD~1`) a second
server runs that code, the two are sent each file in turn (order alternating), and

    exposed = upload_after - (upload_before - check)

is the time the check still adds to an upload after the change (upload_before - check
being the upload without any check), printed as a share of upload_after. `--after DIR`
runs the "after" server from another checkout too (default: this one's src). `--mbit N`
sends each body at N Mbit/s (a client on a real network rather than loopback).

    .venv/bin/python bench/archive_check.py [--rounds 7] [--before /tmp/before] [--mbit 100]
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import zstandard

from packhouse.formats.conda.archive import compute_digests, read_package
from packhouse.formats.pypi.archives import ArchiveLimits, read_metadata
from packhouse.formats.pypi.filenames import parse_dist_filename

PYTHON = Path(sys.executable)
PASSWORD = "bench-admin-password-1"
SKIP = {"malformed", "sparse"}  # refused on purpose: a broken archive and a two-member .conda


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def median_seconds(call: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def hash_file(path: Path) -> None:
    digests: list[Any] = [
        hashlib.sha256(),
        hashlib.md5(usedforsecurity=False),
        hashlib.blake2b(digest_size=32),
    ]
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            for digest in digests:
                digest.update(chunk)


def inflate(path: Path) -> None:
    if path.name.endswith(".tar.bz2"):
        bz2.decompress(path.read_bytes())
    elif path.name.endswith(".tar.gz"):
        gzip.decompress(path.read_bytes())
    elif path.name.endswith(".conda"):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".tar.zst"):
                    zstandard.ZstdDecompressor().stream_reader(archive.read(name)).read()


def conda_subdir(path: Path) -> str:
    subdir = read_package(path).index.get("subdir")
    return subdir if isinstance(subdir, str) else "linux-64"


def files_in(testdata: Path) -> list[Path]:
    return [
        p
        for p in sorted(testdata.rglob("*"))
        if p.name.endswith((".whl", ".tar.gz", ".zip", ".conda", ".tar.bz2"))
        and not SKIP & set(p.relative_to(testdata).parts[:-1])
        and "sparse" not in p.name
    ]


@dataclass
class Server:
    """One `packhouse serve` of a checkout's code (None: the code this venv imports)."""

    name: str
    src: Path | None
    data: Path
    process: subprocess.Popen[bytes] | None = None
    client: httpx.Client | None = None
    times: dict[str, list[float]] = field(default_factory=dict)

    def start(self, rounds: int) -> None:
        env = {**os.environ, "PACKHOUSE_ADMIN_PASSWORD": PASSWORD}
        env.pop("PACKHOUSE_CONFIG", None)
        if self.src is not None:
            env["PYTHONPATH"] = str(self.src / "src")
        run = [str(PYTHON), "-m", "packhouse"]
        subprocess.run([*run, "db", "upgrade", "--data", str(self.data)], env=env, check=True)
        port = free_port()
        log = (self.data.parent / f"{self.name}.log").open("wb")
        argv = [*run, "serve", "--data", str(self.data), "--port", str(port), "--no-access-log"]
        self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", auth=("admin", PASSWORD), timeout=120
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for index in range(rounds):
            for fmt in ("pypi", "conda"):
                body = {"name": f"r{index}", "format": fmt, "kind": "hosted"}
                self.client.post("/api/v1/repositories", json=body).raise_for_status()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def forget_blobs(self) -> None:
        """Remove the stored blobs, so the next upload of the same bytes writes its blob."""
        for blob in (self.data / "blobs").glob("??/??/*"):
            blob.unlink()


def paced(body: bytes, mbit: float) -> Iterator[bytes]:
    """The body in 64 KiB pieces at `mbit` Mbit/s."""
    piece = 64 * 1024
    start = time.perf_counter()
    for offset in range(0, len(body), piece):
        due = start + offset * 8 / (mbit * 1e6)
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        yield body[offset : offset + piece]


def request_for(client: httpx.Client, path: Path, repo: str, subdir: str | None) -> httpx.Request:
    body = path.read_bytes()
    if subdir is not None:
        return client.build_request("PUT", f"/conda/{repo}/{subdir}/{path.name}", content=body)
    dist = parse_dist_filename(path.name)
    fields = {":action": "file_upload", "name": str(dist.name), "version": str(dist.version)}
    return client.build_request(
        "POST", f"/pypi/{repo}/", data=fields, files={"content": (path.name, body)}
    )


def upload(server: Server, path: Path, repo: str, subdir: str | None, mbit: float) -> float:
    client = server.client
    assert client is not None
    request = request_for(client, path, repo, subdir)
    if mbit:
        content = request.read()
        request = httpx.Request(
            request.method, request.url, headers=request.headers, content=paced(content, mbit)
        )
    start = time.perf_counter()
    answer = client.send(request)
    elapsed = time.perf_counter() - start
    if answer.status_code not in (200, 201):
        raise SystemExit(f"{server.name}: {path.name}: {answer.status_code} {answer.text}")
    server.forget_blobs()
    return elapsed


def check_of(path: Path, limits: ArchiveLimits) -> Callable[[], object]:
    """The archive check of `path` as its upload service runs it."""
    if path.name.endswith((".conda", ".tar.bz2")):
        # the upload service passes the digests taken while the body streamed in
        return partial(read_package, path, digests=compute_digests(path))
    return partial(read_metadata, path, parse_dist_filename(path.name), limits)


@dataclass(frozen=True)
class Row:
    name: str
    size: int
    check: float
    hash: float
    inflate: float
    uploads: dict[str, float]  # by server

    def exposed(self) -> float:
        """What the check still adds to the upload after the change (see the docstring)."""
        return max(self.uploads["after"] - (self.uploads["before"] - self.check), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--testdata", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "testdata"
    )
    parser.add_argument("--before", type=Path, help="a checkout to compare with, side by side")
    parser.add_argument("--after", type=Path, help="the checkout to measure (default: this one)")
    parser.add_argument("--mbit", type=float, default=0, help="send bodies at this rate")
    parser.add_argument(
        "--only", default="", help="only files whose name holds one of these (comma-separated)"
    )
    args = parser.parse_args()
    wanted = args.only.split(",")
    files = [p for p in files_in(args.testdata) if any(w in p.name for w in wanted)]
    limits = ArchiveLimits()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        servers = [Server("after", args.after, Path(tmp) / "after" / "data")]
        if args.before is not None:
            servers.append(Server("before", args.before, Path(tmp) / "before" / "data"))
        try:
            for server in servers:
                server.data.parent.mkdir(parents=True)
                server.start(args.rounds)
            for path in files:
                subdir = conda_subdir(path) if path.name.endswith((".conda", ".tar.bz2")) else None
                check = check_of(path, limits)
                check()  # warm the page cache and imports
                times: dict[str, list[float]] = {s.name: [] for s in servers}
                for index in range(args.rounds):
                    order = servers if index % 2 == 0 else servers[::-1]
                    for server in order:
                        elapsed = upload(server, path, f"r{index}", subdir, args.mbit)
                        times[server.name].append(elapsed)
                rows.append(
                    Row(
                        path.name,
                        path.stat().st_size,
                        check=median_seconds(check, args.rounds * 3),
                        hash=median_seconds(partial(hash_file, path), args.rounds * 3),
                        inflate=median_seconds(partial(inflate, path), args.rounds * 3),
                        uploads={name: statistics.median(t) for name, t in times.items()},
                    )
                )
        finally:
            for server in servers:
                server.stop()
    report(rows, args, side_by_side=args.before is not None)


def report(rows: list[Row], args: argparse.Namespace, *, side_by_side: bool) -> None:
    link = f"{args.mbit:g} Mbit/s" if args.mbit else "loopback, unpaced"
    print(f"medians of {args.rounds} uploads and {args.rounds * 3} checks per file; {link}")
    head = f"{'file':44} {'bytes':>7} {'check':>6} {'inflate':>7} {'hash':>5}"
    if side_by_side:
        head += f" {'up before':>9} {'up after':>8} {'a/b':>5} {'chk/up b':>8} {'exposed a':>9}"
    else:
        head += f" {'upload':>7} {'check/upload':>12}"
    print(head + "   (ms)")
    for row in rows:
        line = (
            f"{row.name[:44]:44} {row.size:7d} {row.check * 1e3:6.2f}"
            f" {row.inflate * 1e3:7.2f} {row.hash * 1e3:5.2f}"
        )
        after = row.uploads["after"]
        if side_by_side:
            before = row.uploads["before"]
            line += (
                f" {before * 1e3:9.2f} {after * 1e3:8.2f} {after / before:5.2f}"
                f" {row.check / before:8.1%} {row.exposed() / after:9.1%}"
            )
        else:
            line += f" {after * 1e3:7.2f} {row.check / after:11.1%}"
        print(line)
    print()
    groups = (
        ("wheels", (".whl",)),
        ("sdists", (".tar.gz", ".zip")),
        (".conda", (".conda",)),
        (".tar.bz2", (".tar.bz2",)),
        ("all", (".whl", ".tar.gz", ".zip", ".conda", ".tar.bz2")),
    )
    for label, suffixes in groups:
        group = [r for r in rows if r.name.endswith(suffixes)]
        if not group:
            continue
        check = sum(r.check for r in group)
        after = sum(r.uploads["after"] for r in group)
        text = f"{label:9} {len(group):3d} files: check {check * 1e3:7.1f} ms"
        if side_by_side:
            before = sum(r.uploads["before"] for r in group)
            exposed = sum(r.exposed() for r in group)
            worst = max(r.exposed() / r.uploads["after"] for r in group)
            text += (
                f", upload before {before * 1e3:7.1f} ms, after {after * 1e3:7.1f} ms"
                f" ({after / before:.2f}x); check/upload before {check / before:5.1%},"
                f" exposed after {exposed / after:5.1%} (worst file {worst:5.1%})"
            )
        else:
            worst = max(r.check / r.uploads["after"] for r in group)
            text += f" of {after * 1e3:7.1f} ms upload: {check / after:5.1%} (worst {worst:5.1%})"
        print(text)


if __name__ == "__main__":
    main()
