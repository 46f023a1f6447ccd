"""How much of an upload the archive check takes, for the real files in ../shared/testdata.

For each wheel, sdist, .conda and .tar.bz2 there, it times, as medians of --rounds runs:

- check: the archive check alone, in this process (`read_metadata` for PyPI files, the
  zip/tar walk, entry points included; `read_package` for conda, info/ and the whole body,
  given the digests as the upload service gives them);
- upload: the whole upload of the same file over HTTP to a running `packhouse serve` (SQLite,
  local blobs), a new repository each round so every round stores it, client send included;
- inflate: decompressing the whole archive stream without parsing it (bz2 for .tar.bz2, gzip
  for .tar.gz, zstd for both tarballs of a .conda; 0 for zips, of which only METADATA is
  inflated): the floor for any check that sees every member, as the .tar.bz2 one must
  (info/ may come last);
- hash: reading the file and computing sha256 + md5 + blake2b, as the server does while it
  streams the body to disk (a floor for any upload).

It prints check/upload (the goal: under 10%) and check/hash per file, and the total.

    .venv/bin/python bench/archive_check.py [--rounds 7] [--testdata ../shared/testdata]
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
from collections.abc import Callable
from pathlib import Path

import httpx
import zstandard

from packhouse.formats.conda.archive import compute_digests, read_package
from packhouse.formats.pypi.archives import ArchiveLimits, read_metadata
from packhouse.formats.pypi.filenames import parse_dist_filename

BIN = Path(sys.executable).parent
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
    digests = [
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
    found = [
        p
        for p in sorted(testdata.rglob("*"))
        if p.name.endswith((".whl", ".tar.gz", ".zip", ".conda", ".tar.bz2"))
        and not SKIP & set(p.relative_to(testdata).parts[:-1])
        and "sparse" not in p.name
    ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--testdata", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "testdata"
    )
    args = parser.parse_args()
    files = files_in(args.testdata)
    limits = ArchiveLimits()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        env = {**os.environ, "PACKHOUSE_ADMIN_PASSWORD": PASSWORD}
        env.pop("PACKHOUSE_CONFIG", None)
        subprocess.run([BIN / "packhouse", "db", "upgrade", "--data", data], env=env, check=True)
        for index in range(args.rounds):
            for fmt in ("pypi", "conda"):
                subprocess.run(
                    [
                        BIN / "packhouse",
                        "repo",
                        "create",
                        f"r{index}",
                        "--format",
                        fmt,
                        "--data",
                        data,
                    ],
                    env=env,
                    check=True,
                    capture_output=True,
                )
        port = free_port()
        log = (Path(tmp) / "server.log").open("wb")
        server = subprocess.Popen(
            [BIN / "packhouse", "serve", "--data", data, "--port", str(port), "--no-access-log"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}", auth=("admin", PASSWORD), timeout=120
            )
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            rows = []
            for path in files:
                body = path.read_bytes()
                if path.name.endswith((".conda", ".tar.bz2")):
                    subdir = conda_subdir(path)
                    # the upload service passes the digests taken while the body streamed in
                    digests = compute_digests(path)

                    def check(path: Path = path, digests: object = digests) -> object:
                        return read_package(path, digests=digests)  # type: ignore[arg-type]

                    def send(
                        repo: str, path: Path = path, subdir: str = subdir, body: bytes = body
                    ) -> httpx.Response:
                        return client.put(f"/conda/{repo}/{subdir}/{path.name}", content=body)
                else:
                    dist = parse_dist_filename(path.name)

                    def check(path: Path = path, dist: object = dist) -> object:
                        return read_metadata(path, dist, limits)  # type: ignore[arg-type]

                    def send(
                        repo: str, path: Path = path, dist: object = dist, body: bytes = body
                    ) -> httpx.Response:
                        fields = {
                            ":action": "file_upload",
                            "name": str(dist.name),  # type: ignore[attr-defined]
                            "version": str(dist.version),  # type: ignore[attr-defined]
                        }
                        return client.post(
                            f"/pypi/{repo}/", data=fields, files={"content": (path.name, body)}
                        )

                check()  # warm the page cache and imports
                check_s = median_seconds(check, args.rounds * 3)
                hash_s = median_seconds(lambda path=path: hash_file(path), args.rounds * 3)
                inflate_s = median_seconds(lambda path=path: inflate(path), args.rounds * 3)
                upload_times = []
                for index in range(args.rounds):
                    start = time.perf_counter()
                    answer = send(f"r{index}")
                    upload_times.append(time.perf_counter() - start)
                    if answer.status_code not in (200, 201):
                        raise SystemExit(f"{path.name}: {answer.status_code} {answer.text}")
                upload_s = statistics.median(upload_times)
                rows.append((path.name, len(body), check_s, upload_s, hash_s, inflate_s))
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
    print(
        f"{'file':46} {'bytes':>7} {'check ms':>8} {'inflate':>7} {'upload ms':>9} {'hash':>5}"
        f" {'check/upload':>12} {'check/hash':>10}"
    )
    for name, size, check_s, upload_s, hash_s, inflate_s in rows:
        print(
            f"{name[:46]:46} {size:7d} {check_s * 1e3:8.2f} {inflate_s * 1e3:7.2f}"
            f" {upload_s * 1e3:9.2f} {hash_s * 1e3:5.2f} {check_s / upload_s:11.1%}"
            f" {check_s / hash_s:9.1f}x"
        )
    total_check = sum(r[2] for r in rows)
    total_upload = sum(r[3] for r in rows)
    worst = max(rows, key=lambda r: r[2] / r[3])
    for label, suffixes in (
        ("wheels", (".whl",)),
        ("sdists", (".tar.gz", ".zip")),
        (".conda", (".conda",)),
        (".tar.bz2", (".tar.bz2",)),
    ):
        group = [r for r in rows if r[0].endswith(suffixes)]
        if group:
            share = sum(r[2] for r in group) / sum(r[3] for r in group)
            top = max(r[2] / r[3] for r in group)
            print(
                f"{label:9} {len(group):3d} files: check/upload {share:6.1%} overall,"
                f" worst {top:.1%}"
            )
    print(
        f"\n{len(rows)} files: check {total_check * 1e3:.1f} ms of {total_upload * 1e3:.1f} ms"
        f" upload ({total_check / total_upload:.1%}); worst {worst[0]} at"
        f" {worst[2] / worst[3]:.1%}"
    )


if __name__ == "__main__":
    main()
