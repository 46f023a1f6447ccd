"""Crash rounds: kill -9 the real server at random moments during PyPI and conda uploads,
restart it, and check that nothing acknowledged was lost and nothing is half-written.

    .venv/bin/python bench/crash_rounds.py --rounds 200          # about 10 minutes
    .venv/bin/python bench/crash_rounds.py --rounds 10 --seed 7
    .venv/bin/python bench/crash_rounds.py --rounds 50 --workers 2            # kill them all
    .venv/bin/python bench/crash_rounds.py --rounds 50 --workers 2 --kill worker

Each round starts `packhouse serve` on the same data directory and runs, side by side:
small wheels through the legacy upload API (multipart, what twine sends), big wheels
(1-6 MiB of incompressible bytes) streamed slowly so the kill lands mid-body, conda
packages PUT raw (`.conda` and `.tar.bz2`) and POSTed as a form, and a reader that parses
every page it is sent (simple JSON and HTML, repodata.json and .zst, the shard index) and
remembers each ETag's body. After a random delay the server gets SIGKILL. Then it is
started again and checked:

- no temporary file is left (`tmp/incoming-*`, `blobs/tmp/*`) and `packhouse fsck` finds
  nothing missing and no abandoned temporary file;
- every artifact row's blob exists with its size and sha256 (and its PEP 658 metadata blob);
- the journal agrees with the data: one `upload` row per artifact, same serial, filename
  and sha256, and no upload row without its artifact;
- every upload the client saw acknowledged (200/201) is on the simple page or in repodata
  with its sha256, and downloads with those bytes;
- no page was ever sent that does not parse, and one ETag never named two bodies;
- an upload cut short by the kill, sent again, is accepted (stored once, or "already there
  with the same contents"), never refused as a different file.

With `--workers N` the server runs N worker processes: `--kill all` kills the process
manager and every worker at once (a power loss), `--kill worker` kills one worker while the
others go on serving, and the checks run once the manager has started a new one (which
clears the temporary files the dead worker left).

The test suite runs a few rounds (tests/reliability/test_crash.py); this script runs many.
Exit status 1 when any round found a problem.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import zstandard

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conda_synth import package_bytes  # noqa: E402 (the bench folder is put on the path first)
from wheelgen import wheel_bytes, wheel_filename  # noqa: E402

ADMIN_PASSWORD = "crash-rounds-admin-password"
SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
PROJECT = "crashpkg"
SUBDIRS = ("noarch", "linux-64")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Upload:
    """One file to send: where, how, and its bytes."""

    kind: str  # pypi-small, pypi-big, conda-put, conda-form
    filename: str
    data: bytes
    subdir: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def multipart_pypi(upload: Upload, boundary: str) -> tuple[bytes, bytes]:
    """The legacy upload form around the file: (head, tail)."""
    name, version = upload.filename.split("-")[:2]
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name,
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": upload.sha256,
    }
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content";'
        f' filename="{upload.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def multipart_conda(upload: Upload, boundary: str) -> tuple[bytes, bytes]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="subdir"\r\n\r\n'
        f"{upload.subdir}\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
        f' filename="{upload.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def send(client: httpx.Client, upload: Upload, *, slow: bool = False) -> int:
    """Send one upload; its HTTP status (a transport error propagates)."""

    def body(head: bytes, tail: bytes) -> Iterator[bytes]:
        yield head
        step = 128 * 1024
        for i in range(0, len(upload.data), step):
            yield upload.data[i : i + step]
            if slow:
                time.sleep(0.004)
        yield tail

    boundary = uuid.uuid4().hex
    multipart = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if upload.kind.startswith("pypi"):
        head, tail = multipart_pypi(upload, boundary)
        length = str(len(head) + len(upload.data) + len(tail))
        response = client.post(
            "/pypi/main/",
            content=body(head, tail),
            headers={**multipart, "Content-Length": length},
        )
    elif upload.kind == "conda-form":
        head, tail = multipart_conda(upload, boundary)
        length = str(len(head) + len(upload.data) + len(tail))
        response = client.post(
            "/conda/main/upload",
            content=body(head, tail),
            headers={**multipart, "Content-Length": length},
        )
    else:
        response = client.put(f"/conda/main/{upload.subdir}/{upload.filename}", content=upload.data)
    return response.status_code


@dataclass
class Ledger:
    """What the clients saw: acknowledged uploads, ones cut short, and page problems."""

    acked: dict[str, Upload] = field(default_factory=dict)  # filename -> upload
    unsure: dict[str, Upload] = field(default_factory=dict)  # sent, no answer (killed)
    refused: list[str] = field(default_factory=list)  # a 4xx/5xx to a valid upload
    bad_pages: list[str] = field(default_factory=list)
    etags: dict[tuple[str, str], str] = field(default_factory=dict)  # (path, etag) -> body sha
    pages_read: int = 0
    served: set[str] = field(default_factory=set)  # paths answered 200 once
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, upload: Upload, status: int) -> None:
        with self.lock:
            self.unsure.pop(upload.filename, None)
            if status in (200, 201):
                self.acked[upload.filename] = upload
            else:
                self.refused.append(f"{upload.kind} {upload.filename}: HTTP {status}")

    def page(self, path: str, response: httpx.Response) -> None:
        """Check one page as a client would read it; remember its ETag's body."""
        problem = page_problem(path, response)
        digest = hashlib.sha256(response.content).hexdigest()
        etag = response.headers.get("etag")
        with self.lock:
            self.pages_read += 1
            if response.status_code == 200:
                self.served.add(path)
            elif response.status_code == 404 and path in self.served:
                problem = "HTTP 404 after it was served"
            if problem:
                self.bad_pages.append(f"{path}: {problem}")
            if etag:
                seen = self.etags.setdefault((path, etag), digest)
                if seen != digest:
                    self.bad_pages.append(f"{path}: ETag {etag} sent with two different bodies")


def page_problem(path: str, response: httpx.Response) -> str | None:
    if response.status_code in (304, 404):
        return None  # 404: nothing uploaded there yet (a page that went away: see Ledger.page)
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    body = response.content
    try:
        if path.endswith(".zst"):
            data = zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 30)
            if path.endswith(".msgpack.zst"):
                import msgpack

                index = msgpack.unpackb(data)
                if "shards" not in index:
                    return "the shard index has no 'shards'"
                return None
            body = data
        if "json" in response.headers.get("content-type", "") or path.endswith(".json.zst"):
            doc = orjson.loads(body)
            if path.endswith(("repodata.json", ".json.zst")) and "packages" not in doc:
                return "repodata without 'packages'"
            if "/simple/" in path and "files" not in doc:
                return "a simple page without 'files'"
        elif not re.sub(rb"<!--SERIAL \d+-->\s*$", b"", body).rstrip().endswith(b"</html>"):
            return f"HTML that does not end with </html> ({len(body)} bytes)"
    except Exception as exc:  # anything that does not parse is the finding
        return f"does not parse: {type(exc).__name__}: {exc}"
    return None


PAGES = (
    (f"/pypi/main/simple/{PROJECT}/", SIMPLE_JSON),
    (f"/pypi/main/simple/{PROJECT}/", {"Accept": "text/html"}),
    *((f"/conda/main/{s}/repodata.json", {}) for s in SUBDIRS),
    *((f"/conda/main/{s}/repodata.json.zst", {}) for s in SUBDIRS),
    *((f"/conda/main/{s}/repodata_shards.msgpack.zst", {}) for s in SUBDIRS),
)


class Round:
    """The uploads and reads of one round, in threads, until the server dies."""

    def __init__(self, url: str, auth: tuple[str, str], ledger: Ledger, rng: random.Random) -> None:
        self.url = url
        self.auth = auth
        self.ledger = ledger
        self.rng = rng
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=60)

    def start(self, makers: dict[str, Callable[[], Upload]]) -> None:
        for kind, make in makers.items():
            slow = kind == "pypi-big"
            t = threading.Thread(target=self._uploads, args=(make, slow), daemon=True)
            self.threads.append(t)
        self.threads.append(threading.Thread(target=self._reads, daemon=True))
        for t in self.threads:
            t.start()

    def _uploads(self, make: Callable[[], Upload], slow: bool) -> None:
        with self.client() as client:
            while not self.stop.is_set():
                upload = make()
                with self.ledger.lock:
                    self.ledger.unsure[upload.filename] = upload
                try:
                    status = send(client, upload, slow=slow)
                except httpx.TransportError:
                    return  # the server died under it: stays unsure
                self.ledger.record(upload, status)

    def _reads(self) -> None:
        with self.client() as client:
            while not self.stop.is_set():
                for path, headers in PAGES:
                    try:
                        response = client.get(path, headers=headers)
                    except httpx.TransportError:
                        return
                    self.ledger.page(path, response)

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


class Makers:
    """Distinct files per round and worker: versions r.w.n, bytes seeded."""

    def __init__(self, rng: random.Random, big_max: int) -> None:
        self.rng = rng
        self.big_max = big_max
        self.counter = 0
        self.lock = threading.Lock()

    def _version(self) -> str:
        with self.lock:
            self.counter += 1
            return f"{self.counter}.{self.rng.randrange(1000)}"

    def pypi(self, big: bool) -> Upload:
        version = self._version()
        payload = self.rng.randrange(1 << 20, self.big_max) if big else self.rng.randrange(64)
        noise = base64.b64encode(self.rng.randbytes(payload * 3 // 4)).decode()
        data = wheel_bytes(PROJECT, version, summary=f"crash {noise[:20]}", payload=0)
        if big:  # an incompressible module: a big upload that takes a while to stream
            data = _wheel_with_blob(version, noise.encode())
        return Upload("pypi-big" if big else "pypi-small", wheel_filename(PROJECT, version), data)

    def conda(self, kind: str) -> Upload:
        version = self._version()
        subdir = self.rng.choice(SUBDIRS)
        extension = self.rng.choice((".conda", ".tar.bz2"))
        files = {f"share/{PROJECT}/{version}.bin": self.rng.randbytes(self.rng.randrange(4096))}
        filename, data = package_bytes(
            PROJECT, version, "0", subdir=subdir, extension=extension, files=files
        )
        return Upload(kind, filename, data, subdir)

    def all(self) -> dict[str, Callable[[], Upload]]:
        return {
            "pypi-small": lambda: self.pypi(False),
            "pypi-big": lambda: self.pypi(True),
            "conda-put": lambda: self.conda("conda-put"),
            "conda-form": lambda: self.conda("conda-form"),
        }


def _wheel_with_blob(version: str, blob: bytes) -> bytes:
    """A valid wheel holding `blob` as a module's text (stored, not deflated)."""
    import zipfile

    plain = wheel_bytes(PROJECT, version)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain)) as src, zipfile.ZipFile(out, "w") as dst:
        record_name = next(n for n in src.namelist() if n.endswith("/RECORD"))
        lines = src.read(record_name).decode().splitlines()
        for info in src.infolist():
            if info.filename != record_name:
                dst.writestr(info, src.read(info))
        module = f"{PROJECT}/blob.py"
        text = b"BLOB = '''" + blob + b"'''\n"
        digest = base64.urlsafe_b64encode(hashlib.sha256(text).digest()).rstrip(b"=").decode()
        dst.writestr(module, text)
        lines.insert(0, f"{module},sha256={digest},{len(text)}")
        dst.writestr(record_name, "\n".join(lines) + "\n")
    return out.getvalue()


# -- the server ---------------------------------------------------------------------------------


class Server:
    """`packhouse serve` on one data directory; with `workers` > 1, the process manager and
    its workers, in a process group of their own."""

    def __init__(self, data: Path, log_name: str = "crash-server.log", workers: int = 1) -> None:
        self.data = data
        self.workers = workers
        self.respawned = 0.0  # when the manager last started a killed worker again
        self.env = {**os.environ, "PACKHOUSE_ADMIN_PASSWORD": ADMIN_PASSWORD}
        self.env.pop("PACKHOUSE_CONFIG", None)
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log = data.parent / log_name
        self.seen = 0

    def start(self) -> None:
        port = free_port()
        self.data.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "packhouse",
                    "serve",
                    "--port",
                    str(port),
                    "--data",
                    str(self.data),
                    "--workers",
                    str(self.workers),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # kill() takes the manager and its workers at once
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{self.log.read_text()[-3000:]}")
            if self.healthy():
                return
            time.sleep(0.05)
        raise RuntimeError("the server did not start in 90 s")

    def errors(self) -> list[str]:
        """What the server logged as errors since the last call (500s come with one)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        fresh, self.seen = text[self.seen :], len(text)
        lines = [line for line in fresh.splitlines() if "ERROR" in line or "Error:" in line]
        # granian's word on a worker this script killed is expected, not a finding
        return [line for line in lines if "Unexpected exit from worker" not in line]

    def kill(self) -> None:
        """kill -9 every process of the server at once, as a power loss would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        pids: list[int] = []
        # the manager's threads fork too (a worker started again comes from a watcher thread)
        for children in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            try:
                pids += [int(child) for child in children.read_text().split()]
            except OSError:
                continue
        return [pid for pid in pids if not _zombie(pid)]

    def kill_worker(self, rng: random.Random) -> int:
        """kill -9 one worker; the process manager starts another, the others go on."""
        before = self.worker_pids()
        if not before:
            raise RuntimeError("the server has no worker processes to kill")
        # granian takes a worker that dies again within 5.5 s of being started for a crash
        # loop and stops the whole server: kill no sooner (docs/scale.md says so)
        time.sleep(max(0.0, self.respawned + 6.0 - time.monotonic()))
        victim = rng.choice(before)
        os.kill(victim, signal.SIGKILL)
        return victim

    def wait_for_workers(self, killed: int) -> None:
        """Until the manager has its full count of workers again, without the killed one,
        and the new worker has cleared the temporary files the dead one left (it does so
        as it starts; the checks look for them again)."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if killed not in pids and len(pids) >= self.workers and self.healthy():
                self.respawned = time.monotonic()
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(
                f"the killed worker was not started again in 90 s (pids {self.worker_pids()})"
            )
        settle = time.monotonic() + 30
        while time.monotonic() < settle and _temp_files(self.data):
            time.sleep(0.1)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def fsck(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "packhouse", "fsck", "--data", str(self.data)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in "ZX"
    except (OSError, IndexError):
        return True


def _temp_files(data: Path) -> list[Path]:
    """Temporary files of uploads and of blobs being written, in a data directory."""
    return sorted((data / "tmp").glob("incoming-*")) + sorted((data / "blobs" / "tmp").glob("*"))


# -- the checks after a restart -----------------------------------------------------------------


class Checker:
    def __init__(self, server: Server, ledger: Ledger) -> None:
        self.server = server
        self.ledger = ledger
        self.hashed: dict[str, str] = {}  # blob path -> its sha256, hashed once
        self.downloaded: set[str] = set()  # acknowledged files downloaded and checked once

    def problems(self) -> list[str]:
        found: list[str] = []
        found += self.temp_files()
        found += self.fsck()
        found += self.database()
        found += self.acknowledged()
        with self.ledger.lock:
            found += self.ledger.bad_pages
            found += self.ledger.refused
            self.ledger.bad_pages.clear()
            self.ledger.refused.clear()
        return found

    def temp_files(self) -> list[str]:
        left = _temp_files(self.server.data)
        return [f"temporary file left after the restart: {p}" for p in left]

    def fsck(self) -> list[str]:
        result = self.server.fsck()
        out = result.stdout
        clean = re.search(r"\b0 missing, .*\b0 abandoned temporary files", out)
        if result.returncode != 0 or not clean:
            return [
                f"packhouse fsck is not clean ({result.returncode}): {out[-2000:]}"
                f" {result.stderr[-2000:]}"
            ]
        return []

    def blob(self, sha: str) -> Path:
        return self.server.data / "blobs" / sha[:2] / sha[2:4] / sha

    def _sha_of(self, path: Path) -> str:
        key = str(path)
        if key not in self.hashed:
            self.hashed[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self.hashed[key]

    def database(self) -> list[str]:
        found: list[str] = []
        db = sqlite3.connect(f"file:{self.server.data / 'packhouse.db'}?mode=ro", uri=True)
        try:
            arts = db.execute(
                "SELECT filename, sha256, size, serial, metadata_sha256 FROM artifacts"
                " WHERE deleted = 0"
            ).fetchall()
            journal = db.execute(
                "SELECT serial, filename, detail FROM journal WHERE action = 'upload'"
            ).fetchall()
        finally:
            db.close()
        for filename, sha, size, _serial, metadata_sha in arts:
            path = self.blob(sha)
            if not path.is_file():
                found.append(f"{filename}: listed without its blob {sha}")
                continue
            if path.stat().st_size != size or self._sha_of(path) != sha:
                found.append(f"{filename}: its blob's bytes do not match the row")
            if metadata_sha and not self.blob(metadata_sha).is_file():
                found.append(f"{filename}: listed without its metadata blob {metadata_sha}")
        by_serial = {serial: (filename, sha) for filename, sha, _, serial, _ in arts}
        rows = {}
        for serial, filename, detail in journal:
            rows[serial] = filename
            sha = json.loads(detail or "{}").get("sha256")
            if by_serial.get(serial) != (filename, sha):
                found.append(f"journal row {serial} ({filename}) has no matching artifact")
        for serial, (filename, _) in by_serial.items():
            if rows.get(serial) != filename:
                found.append(f"artifact {filename} (serial {serial}) has no upload journal row")
        return found

    def acknowledged(self) -> list[str]:
        """Every acknowledged upload is listed with its sha256 and downloads as sent."""
        found: list[str] = []
        with self.ledger.lock:
            acked = dict(self.ledger.acked)
        with httpx.Client(
            base_url=self.server.url, auth=("admin", ADMIN_PASSWORD), timeout=60
        ) as client:
            page = client.get(f"/pypi/main/simple/{PROJECT}/", headers=SIMPLE_JSON)
            listed: dict[str, str] = {}
            if page.status_code == 200:
                for f in page.json()["files"]:
                    listed[f["filename"]] = f["hashes"]["sha256"]
            elif page.status_code != 404 or any(u.kind.startswith("pypi") for u in acked.values()):
                found.append(f"the simple page answered {page.status_code}: {page.text[:300]}")
            for subdir in SUBDIRS:
                response = client.get(f"/conda/main/{subdir}/repodata.json")
                if response.status_code != 200:
                    if response.status_code != 404 or any(
                        u.subdir == subdir for u in acked.values()
                    ):
                        found.append(
                            f"{subdir}/repodata.json answered {response.status_code}:"
                            f" {response.text[:300]}"
                        )
                    continue
                doc = response.json()
                for section in ("packages", "packages.conda"):
                    for filename, record in doc.get(section, {}).items():
                        listed[filename] = record["sha256"]
            for filename, upload in sorted(acked.items()):
                if listed.get(filename) != upload.sha256:
                    found.append(f"acknowledged {filename} is not listed with its sha256")
                    continue
                if filename in self.downloaded:
                    continue  # its bytes were checked once; the listing is checked each time
                if upload.kind.startswith("pypi"):
                    path = f"/files/{upload.sha256}/{filename}"
                else:
                    path = f"/conda/main/{upload.subdir}/{filename}"
                got = client.get(path)
                if (
                    got.status_code != 200
                    or hashlib.sha256(got.content).hexdigest() != upload.sha256
                ):
                    found.append(f"acknowledged {filename} does not download as sent")
                else:
                    self.downloaded.add(filename)
        return found


def resend_unsure(server: Server, ledger: Ledger) -> list[str]:
    """Uploads the kill cut short, sent again as a CI job would: each must be accepted."""
    found: list[str] = []
    with ledger.lock:
        pending = list(ledger.unsure.values())
    with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=60) as client:
        for upload in pending:
            status = send(client, upload)
            ledger.record(upload, status)
            if status not in (200, 201):
                found.append(f"{upload.filename} sent again after the crash answered {status}")
    return found


@dataclass
class Summary:
    rounds: int = 0
    acked: int = 0
    resent: int = 0
    pages: int = 0
    problems: list[str] = field(default_factory=list)


def run_rounds(
    data: Path,
    rounds: int,
    seed: int,
    *,
    max_delay: float = 1.5,
    big_max: int = 6 << 20,
    emit: Callable[[str], None] = log,
    workers: int = 1,
    kill: str = "all",
) -> Summary:
    """`rounds` crash rounds on a fresh data directory `data`; the summary. `kill` "all"
    kills the whole server (with its workers) and starts it again; "worker" kills one of
    `workers` worker processes, and the process manager starts another."""
    if kill not in ("all", "worker"):
        raise ValueError(f"kill must be 'all' or 'worker', not {kill!r}")
    rng = random.Random(seed)
    server = Server(data, workers=workers)
    ledger = Ledger()
    checker = Checker(server, ledger)
    makers = Makers(rng, big_max)
    summary = Summary()
    try:
        server.start()  # the first start creates the admin and the main repositories
        server.errors()
        for number in range(1, rounds + 1):
            crash = Round(server.url, ("admin", ADMIN_PASSWORD), ledger, rng)
            crash.start(makers.all())
            t0 = time.monotonic()
            time.sleep(rng.uniform(0.05, max_delay))
            killed = 0
            if kill == "all":
                server.kill()
            else:
                killed = server.kill_worker(rng)
            crash.join()
            t1 = time.monotonic()
            cut = len(ledger.unsure)
            try:
                server.start() if kill == "all" else server.wait_for_workers(killed)
            except RuntimeError as exc:
                summary.problems.append(f"round {number}: the server did not restart: {exc}")
                break
            t2 = time.monotonic()
            found = checker.problems()
            t3 = time.monotonic()
            found += resend_unsure(server, ledger)
            found += [f"the server logged: {line[:500]}" for line in server.errors()[:10]]
            summary.rounds = number
            summary.resent += cut
            summary.problems += [f"round {number}: {p}" for p in found]
            emit(
                f"round {number}: {len(ledger.acked)} acknowledged so far, {cut} cut short and"
                f" sent again, {ledger.pages_read} pages parsed, {len(found)} problems (killed"
                f" after {t1 - t0:.2f} s, restart {t2 - t1:.2f} s, checks {t3 - t2:.2f} s)"
            )
            for problem in found[:20]:
                emit(f"  {problem}")
        if summary.rounds == rounds:  # the last re-sent uploads, checked too
            found = checker.problems()
            summary.problems += [f"after the last round: {p}" for p in found]
    finally:
        server.stop()
    summary.acked = len(ledger.acked)
    summary.pages = ledger.pages_read
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--max-delay", type=float, default=1.5, help="seconds before the kill")
    parser.add_argument("--keep", type=Path, help="run in this (new) directory and keep it")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N")
    parser.add_argument(
        "--kill",
        choices=("all", "worker"),
        default="all",
        help="kill the whole server, or one worker (which the process manager starts again)",
    )
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="crash-rounds-") as tmp:
        data = (args.keep or Path(tmp)) / "data"
        start = time.monotonic()
        summary = run_rounds(
            data,
            args.rounds,
            args.seed,
            max_delay=args.max_delay,
            workers=args.workers,
            kill=args.kill,
        )
        elapsed = time.monotonic() - start
    print(
        f"{summary.rounds} crash rounds (seed {args.seed}) in {elapsed:.0f} s:"
        f" {summary.acked} acknowledged uploads all present with their sha256,"
        f" {summary.resent} cut short and sent again, {summary.pages} pages parsed,"
        f" {len(summary.problems)} problems"
    )
    for problem in summary.problems[:50]:
        print(f"  {problem}")
    sys.exit(1 if summary.problems else 0)


if __name__ == "__main__":
    main()
