"""Benchmark Packhouse's PyPI simple API against devpi-server and nginx, side by side.

    .venv/bin/python bench/pypi_simple.py                # everything, about 5 minutes
    .venv/bin/python bench/pypi_simple.py --duration 5 --big 2000 --skip-rss
    .venv/bin/python bench/pypi_simple.py --only big --cold-rounds 5   # Packhouse's part 2 (+4)

One run starts three servers pinned to one core (`taskset -c 0`): Packhouse (`packhouse
serve`), devpi-server (`--offline-mode`, a plain index) and nginx serving a static PEP 503/691
tree built from Packhouse's own rendered pages (same bytes). The same files (synthetic wheels
from wheelgen.py plus the real files in tests/data/pypi) are uploaded to all of them over
the legacy upload API. Then, with wrk on the other core (`taskset -c 1`):

1. throughput and p99 of GET .../simple/<project>/ for HTML and JSON, each server;
2. a project with --big files: its page cold (first request after an upload) and warm;
3. `twine upload` of 50 files (the real ones plus synthetic ones) to each;
4. Packhouse's RSS (VmRSS, VmHWM) with --rss-files files stored after serving their pages.

Packhouse's big project and the RSS files are seeded in-process through the service layer
(packhouse.services.pypi_uploads.upload_pypi), which is what an HTTP upload ends in; devpi's
big project is uploaded over HTTP and may be smaller (--devpi-big), as the output says.

`--only big` starts Packhouse alone and runs part 2 for it (then part 4 unless --skip-rss);
`--cold-rounds N` repeats part 2's upload + cold request + warm requests N times and reports
each figure's median (the log has every round).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from wheelgen import make_wheels, versions, wheel_bytes, wheel_filename  # noqa: E402

BIN = Path(sys.executable).parent
REAL_FILES = sorted(
    p for p in (ROOT / "tests" / "data" / "pypi").iterdir() if p.name.endswith((".whl", ".tar.gz"))
)
JSON_V1 = "application/vnd.pypi.simple.v1+json"
ADMIN_PASSWORD = "bench-admin-pw"
DEVPI_USER, DEVPI_PASSWORD = "bench", "bench-pw"

TARGETS = {
    "vs_devpi": 10.0,  # Packhouse req/s at least 10x devpi-server's
    "vs_nginx": 0.25,  # and at least 0.25x nginx's
    "big_ms": 50.0,  # a 5,000-file project's page in under 50 ms
    "twine": 0.5,  # twine upload at most 0.5x devpi-server's time
    "rss_mb": 150.0,  # RSS with 10,000 files stored
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- processes ------------------------------------------------------------------------------


class Procs:
    """The servers this run started; stopped by PID at the end, nothing else."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], log_path: Path, **kw: object) -> subprocess.Popen[bytes]:
        out = log_path.open("wb")
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_http(port: int, path: str = "/", timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing answered on port {port} within {timeout}s")


def run(argv: Sequence[str], **kw: object) -> str:
    out = subprocess.run(list(argv), capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if out.returncode:
        raise SystemExit(
            f"{' '.join(map(str, argv))[:200]} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
        )
    return str(out.stdout)


# -- HTTP helpers ---------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        status, _, data = self.request("GET", path, headers=headers)
        return status, data

    def timed_get(self, path: str, headers: dict[str, str] | None = None) -> float:
        start = time.perf_counter()
        status, _ = self.get(path, headers)
        elapsed = time.perf_counter() - start
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}")
        return elapsed * 1000


def _dist_fields(filename: str) -> dict[str, str]:
    from packaging.utils import parse_sdist_filename, parse_wheel_filename

    if filename.endswith(".whl"):
        name, version, _, _ = parse_wheel_filename(filename)
        return {
            "name": name,
            "version": str(version),
            "filetype": "bdist_wheel",
            "pyversion": "py3",
        }
    name, version = parse_sdist_filename(filename)
    return {"name": name, "version": str(version), "filetype": "sdist", "pyversion": "source"}


def legacy_upload(client: Client, path: str, auth: str, filename: str, data: bytes) -> None:
    """One file through the legacy upload API (what twine sends), as multipart/form-data."""
    import hashlib

    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        **_dist_fields(filename),
    }
    boundary = uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + f"{value}\r\n".encode()
        )
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"'
            "\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    body = b"".join(parts)
    status, _, answer = client.request(
        "POST",
        path,
        body,
        {"Authorization": auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    if status != 200:
        raise SystemExit(f"upload of {filename} to {path} answered {status}: {answer[:300]!r}")


# -- the servers ----------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    pid: int
    simple: str  # path prefix of project pages: f"{simple}{project}/"
    upload: str  # legacy upload path
    auth: str  # Authorization header for uploads
    headers: dict[str, str] = field(default_factory=dict)  # for reads


def start_packhouse(procs: Procs, tmp: Path, server_cpu: str) -> tuple[Path, Server, Server]:
    data = tmp / "packhouse"
    port = free_port()
    env = {**os.environ, "PACKHOUSE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    # Data commands refuse a directory without a database: create it first.
    run([BIN / "packhouse", "db", "upgrade", "--data", data], env=env)
    for repo in ("bench", "twine"):
        run(
            [
                BIN / "packhouse",
                "repo",
                "create",
                repo,
                "--format",
                "pypi",
                "--public",
                "--data",
                data,
            ],
            env=env,
        )
    proc = procs.start(
        [
            "taskset", "-c", server_cpu, BIN / "packhouse", "serve",
            "--data", data, "--port", str(port), "--no-access-log",
        ],
        tmp / "packhouse.log",
        env=env,
    )  # fmt: skip
    wait_http(port, "/healthz")
    auth = basic("admin", ADMIN_PASSWORD)
    public = Server("packhouse", port, proc.pid, "/pypi/bench/simple/", "/pypi/bench/", auth)
    private = Server(
        "packhouse (auth)", port, proc.pid, "/pypi/main/simple/", "/pypi/main/", auth,
        {"Authorization": auth},
    )  # fmt: skip
    return data, public, private


def start_devpi(procs: Procs, tmp: Path, server_cpu: str) -> Server:
    serverdir, clientdir = tmp / "devpi-server", tmp / "devpi-client"
    port = free_port()
    run([BIN / "devpi-init", "--serverdir", serverdir, "--no-root-pypi", "--root-passwd", "root"])
    proc = procs.start(
        [
            "taskset", "-c", server_cpu, BIN / "devpi-server", "--serverdir", serverdir,
            "--offline-mode", "--host", "127.0.0.1", "--port", str(port),
        ],
        tmp / "devpi.log",
    )  # fmt: skip
    wait_http(port, "/+api")
    devpi = [BIN / "devpi", "--clientdir", clientdir]
    run([*devpi, "use", f"http://127.0.0.1:{port}"])
    run([*devpi, "user", "-c", DEVPI_USER, f"password={DEVPI_PASSWORD}"])
    run([*devpi, "login", DEVPI_USER, "--password", DEVPI_PASSWORD])
    for index in ("dev", "twine", "big"):
        run([*devpi, "index", "-c", f"{DEVPI_USER}/{index}", "bases=", "volatile=True"])
    return Server(
        "devpi",
        port,
        proc.pid,
        f"/{DEVPI_USER}/dev/+simple/",
        f"/{DEVPI_USER}/dev/",
        basic(DEVPI_USER, DEVPI_PASSWORD),
    )


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{
        text/html html;
        application/vnd.pypi.simple.v1+json json;
        application/zip whl;
        application/gzip gz;
    }}
    # PEP 691: JSON for a client that asks for it, else HTML.
    map $http_accept $simple_file {{
        default index.html;
        "~application/vnd\\.pypi\\.simple\\.v1\\+json" index.json;
    }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location ~ ^(?<dir>/pypi/[^/]+/simple/(?:[^/]+/)?)$ {{
            add_header Vary Accept;
            try_files $dir$simple_file =404;
        }}
        location /files/ {{ }}
    }}
}}
"""


def start_nginx(
    procs: Procs, tmp: Path, server_cpu: str, packhouse: Server, files: dict[str, Path]
) -> Server:
    """A static PEP 503/691 tree of Packhouse's own pages (same bytes) and the files."""
    prefix = tmp / "nginx"
    root = prefix / "root"
    (prefix / "tmp").mkdir(parents=True)
    client = Client(packhouse.port)
    simple_dir = root / packhouse.simple.strip("/")
    status, index = client.get(packhouse.simple, {"Accept": JSON_V1})
    assert status == 200, status
    pages = 0
    for kind, accept, name in (("", "", "index.html"), ("", JSON_V1, "index.json")):
        del kind
        status, body = client.get(packhouse.simple, {"Accept": accept} if accept else {})
        (simple_dir).mkdir(parents=True, exist_ok=True)
        (simple_dir / name).write_bytes(body)
    for project in json.loads(index)["projects"]:
        pname = project["name"]
        for accept, name in (("", "index.html"), (JSON_V1, "index.json")):
            status, body = client.get(
                f"{packhouse.simple}{pname}/", {"Accept": accept} if accept else {}
            )
            assert status == 200, (pname, status)
            (simple_dir / pname).mkdir(parents=True, exist_ok=True)
            (simple_dir / pname / name).write_bytes(body)
            pages += 1
            if name == "index.json":
                for f in json.loads(body)["files"]:
                    src = files.get(f["filename"])
                    if src is not None:
                        dest = root / "files" / f["hashes"]["sha256"] / f["filename"]
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(src, dest)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, root=root))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = procs.start(
        ["taskset", "-c", server_cpu, nginx, "-e", "stderr", "-p", str(prefix), "-c", str(conf)],
        tmp / "nginx.log",
    )
    wait_http(port, "/files/")
    log(f"nginx serves {pages} pages copied from Packhouse")
    return Server("nginx", port, proc.pid, packhouse.simple, "", "")


# -- wrk ------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    rps: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str, headers: dict[str, str], tmp: Path, *, cpu: str, duration: int, connections: int
) -> WrkResult:
    script = tmp / f"wrk-{uuid.uuid4().hex}.lua"
    script.write_text(
        "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in headers.items())
    )
    argv = [
        "taskset", "-c", cpu, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
        "--timeout", "10s", "--latency", "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    p99 = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses:\s+(\d+)", r"Socket errors:.*timeout (\d+)"):
        em = re.search(pattern, text)
        if em:
            errors += int(em.group(1))
    return WrkResult(rps, p99, errors)


# -- in-process seeding (Packhouse) ---------------------------------------------------------


_SEED = """
import sys, time, json
from pathlib import Path
sys.path.insert(0, {here!r})
from wheelgen import wheel_bytes, wheel_filename, versions
from packhouse.config import Settings
from packhouse.wiring import Services, build_context
from packhouse.services.access import Principal
from packhouse.services.pypi_uploads import upload_pypi
from packhouse.storage.base import IncomingFile
from packhouse.types import Format

data, repo_name, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
settings = Settings(data=Path(data))
ctx = build_context(settings, migrate=False)
svc = Services.of(ctx)
repo = svc.catalog.get(Format.PYPI, repo_name)
admin = svc.access.snapshot().users["admin"]
who = Principal(admin.name, admin.id, True)
start = time.perf_counter()
count = 0
for project, n, first in spec:
    for version in list(versions(first + n))[first:]:
        body = wheel_bytes(project, version)
        filename = wheel_filename(project, version)
        incoming = IncomingFile(ctx.tmp_dir, 1 << 30)
        incoming.write(body)
        incoming._file.flush()
        incoming._file.close()
        fields = {{":action": "file_upload", "name": project, "version": version,
                   "filetype": "bdist_wheel"}}
        try:
            upload_pypi(ctx, repo, who, fields, filename, incoming)
        finally:
            incoming.discard()
        count += 1
svc.close()
print(count, time.perf_counter() - start)
"""


def seed_packhouse(data: Path, repo: str, spec: list[tuple[str, int, int]]) -> tuple[int, float]:
    """Upload synthetic wheels through upload_pypi in a separate process: `spec` is a list
    of (project, how many, first version index)."""
    out = run([sys.executable, "-c", _SEED.format(here=str(HERE)), data, repo, json.dumps(spec)])
    count, seconds = out.split()
    return int(count), float(seconds)


# -- the measurements -----------------------------------------------------------------------


def twine_accepts(path: Path) -> bool:
    """Whether twine (7) would upload this file: it validates the core metadata."""
    import tarfile
    import zipfile

    from packaging.metadata import Metadata

    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            raw = zf.read(name)
    else:
        with tarfile.open(path) as tf:
            member = next(
                m for m in tf.getmembers() if m.name.count("/") == 1 and m.name.endswith("PKG-INFO")
            )
            raw = tf.extractfile(member).read()  # type: ignore[union-attr]
    try:
        Metadata.from_email(raw, validate=True)
    except Exception:
        return False
    return True


def rss_of(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def big_project(
    client: Client,
    server: Server,
    project: str,
    upload_one: Callable[[], None],
    repeats: int = 5,
    rounds: int = 1,
) -> dict[str, float]:
    """Cold: the first request after an upload; warm: the median of the next ones. With
    `rounds`, each figure is the median over that many rounds."""
    seen: dict[str, list[float]] = {}
    path = f"{server.simple}{project}/"
    for round_ in range(1, rounds + 1):
        for kind, headers in (("html", {}), ("json", {"Accept": JSON_V1})):
            headers = {**server.headers, **headers}
            upload_one()
            seen.setdefault(f"{kind}_cold", []).append(client.timed_get(path, headers))
            seen.setdefault(f"{kind}_warm", []).append(
                statistics.median(client.timed_get(path, headers) for _ in range(repeats))
            )
        if rounds > 1:
            log(
                f"{server.name} big project, round {round_}: "
                + ", ".join(f"{k} {v[-1]:.1f} ms" for k, v in seen.items())
            )
    if rounds > 1:
        log(
            f"{server.name} big project over {rounds} rounds (min-max): "
            + ", ".join(f"{k} {min(v):.1f}-{max(v):.1f} ms" for k, v in seen.items())
        )
    return {k: statistics.median(v) for k, v in seen.items()}


def measure_rss(
    args: argparse.Namespace, data: Path, ph: Server, client: Client, stored: int
) -> tuple[tuple[float, float], int]:
    """Part 4: seed up to --rss-files files, serve every project's pages, read the RSS."""
    missing = max(0, args.rss_files - stored)
    rss_projects = 100
    spec = [
        (f"rss-{i}", missing // rss_projects + (1 if i < missing % rss_projects else 0), 0)
        for i in range(rss_projects)
    ]
    spec = [s for s in spec if s[1]]
    if spec:
        count, seconds = seed_packhouse(data, "bench", spec)
        stored += count
        log(f"seeded {count} more files in-process in {seconds:.1f}s ({stored} stored)")
    status, index = client.get(ph.simple, {"Accept": JSON_V1})
    names = [p["name"] for p in json.loads(index)["projects"]]
    for name in names:
        for headers in ({}, {"Accept": JSON_V1}):
            status, _ = client.get(f"{ph.simple}{name}/", headers)
            assert status == 200, (name, status)
    rss = rss_of(ph.pid)
    log(f"served {len(names) * 2} pages; packhouse RSS {rss[0]:.1f} MB, HWM {rss[1]:.1f} MB")
    return rss, stored


def rss_line(rss: tuple[float, float], stored: int) -> str:
    return (
        f"Packhouse memory with {stored} files stored, after serving every project's"
        f" pages: VmRSS {rss[0]:.1f} MB, VmHWM {rss[1]:.1f} MB (target < "
        f"{TARGETS['rss_mb']:.0f} MB: {'yes' if rss[1] < TARGETS['rss_mb'] else 'NO'})"
    )


def big_only(args: argparse.Namespace, data: Path, ph: Server, emit: Callable[[str], None]) -> None:
    """`--only big`: part 2 for Packhouse alone, then part 4 unless --skip-rss."""
    big_name = "big-project"
    count, seconds = seed_packhouse(data, "bench", [(big_name, args.big, 0)])
    log(f"seeded {count} files into Packhouse in-process in {seconds:.1f}s")
    client = Client(ph.port)
    extra = iter(versions(10**6))
    for _ in range(args.big):
        next(extra)

    def upload_one() -> None:
        v = next(extra)
        legacy_upload(client, ph.upload, ph.auth, wheel_filename(big_name, v),
                      wheel_bytes(big_name, v))  # fmt: skip

    big = big_project(client, ph, big_name, upload_one, rounds=args.cold_rounds)
    log(f"packhouse big project: {big}")
    stored = args.big + 2 * args.cold_rounds
    rss = None if args.skip_rss else measure_rss(args, data, ph, client, stored)
    emit("")
    emit(
        f"Big project: Packhouse {stored} files (seeded in-process, then one HTTP upload before"
        " each cold request). Cold = the first request after an upload, warm = the median of"
        f" 5 more; each the median of {args.cold_rounds} round(s)."
    )
    emit("")
    emit("| page | Packhouse ms |")
    emit("|---|---:|")
    for key in ("html_cold", "html_warm", "json_cold", "json_warm"):
        emit(f"| {key.replace('_', ' ')} | {big[key]:.1f} |")
    worst = max(big.values())
    emit(
        f"| target: < {TARGETS['big_ms']:.0f} ms | worst {worst:.1f} ms"
        f" {'yes' if worst < TARGETS['big_ms'] else 'NO'} |"
    )
    if rss is not None:
        emit(rss_line(*rss))


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--projects", type=int, default=5, help="synthetic projects [5]")
    parser.add_argument("--per-project", type=int, default=40, help="wheels per project [40]")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run [10]")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each run [2]")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections [50]")
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="rounds of wrk runs, servers interleaved; the best round of each counts [1]",
    )  # fmt: skip
    parser.add_argument("--big", type=int, default=5000, help="files in the big project [5000]")
    parser.add_argument(
        "--devpi-big", type=int, default=500,
        help="files in devpi's big project, uploaded over HTTP (slow) [500]",
    )  # fmt: skip
    parser.add_argument("--twine-files", type=int, default=50, help="files for twine [50]")
    parser.add_argument("--rss-files", type=int, default=10_000, help="files stored for RSS")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--wrk-cpu", default="1")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--only", choices=["big"],
        help="big: Packhouse alone, the big project (and RSS unless --skip-rss)",
    )  # fmt: skip
    parser.add_argument(
        "--cold-rounds", type=int, default=1,
        help="rounds of the big project's cold/warm requests; medians are reported [1]",
    )  # fmt: skip
    args = parser.parse_args()
    only_big = args.only == "big"

    for tool in ("taskset",) if only_big else ("wrk", "nginx", "taskset"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is needed (apt-get install -y wrk nginx-light util-linux)")

    tmp = Path(tempfile.mkdtemp(prefix="pypi-bench-"))
    tmp.chmod(0o711)  # nginx's worker runs as another user when started by root
    procs = Procs()
    out_lines: list[str] = []

    def emit(line: str = "") -> None:
        out_lines.append(line)
        print(line, flush=True)

    try:
        # -- files --------------------------------------------------------------------------
        files_dir = tmp / "files"
        start = time.perf_counter()
        projects = [f"synth-{i}" for i in range(args.projects)]
        synthetic = make_wheels(files_dir, projects, args.per_project)
        dataset = [*synthetic, *REAL_FILES]
        by_name = {p.name: p for p in dataset}
        log(f"generated {len(synthetic)} wheels in {time.perf_counter() - start:.2f}s")

        # -- servers ------------------------------------------------------------------------
        ph_data, ph, ph_auth = start_packhouse(procs, tmp, args.server_cpu)
        log(f"packhouse on :{ph.port} (pid {ph.pid})")
        if only_big:
            big_only(args, ph_data, ph, emit)
            return
        dv = start_devpi(procs, tmp, args.server_cpu)
        log(f"devpi-server on :{dv.port} (pid {dv.pid})")

        # -- uploads ------------------------------------------------------------------------
        for server in (ph, ph_auth, dv):
            client = Client(server.port)
            start = time.perf_counter()
            for path in dataset:
                legacy_upload(client, server.upload, server.auth, path.name, path.read_bytes())
            log(
                f"uploaded {len(dataset)} files to {server.name} {server.upload} over HTTP in"
                f" {time.perf_counter() - start:.1f}s"
            )
        ng = start_nginx(procs, tmp, args.server_cpu, ph, by_name)

        # -- 1. throughput ------------------------------------------------------------------
        project = projects[0]
        results: dict[tuple[str, str], WrkResult] = {}
        for round_ in range(1, args.rounds + 1):
            for server in (ph, ph_auth, dv, ng):
                for kind, accept in (("html", {}), ("json", {"Accept": JSON_V1})):
                    url = f"http://127.0.0.1:{server.port}{server.simple}{project}/"
                    headers = {**server.headers, **accept}
                    status, body = Client(server.port).get(f"{server.simple}{project}/", headers)
                    if status != 200:
                        raise SystemExit(f"{server.name}: GET {url} answered {status}")
                    kw = {"cpu": args.wrk_cpu, "connections": args.connections}
                    if args.warmup:
                        wrk(url, headers, tmp, duration=args.warmup, **kw)
                    res = wrk(url, headers, tmp, duration=args.duration, **kw)
                    best = results.get((server.name, kind))
                    if best is None or res.rps > best.rps:
                        results[(server.name, kind)] = res
                    log(
                        f"round {round_}: {server.name:17} {kind:4} {res.rps:10.0f} req/s"
                        f"  p99 {res.p99_ms:7.2f} ms  ({len(body)} bytes, errors {res.errors})"
                    )

        # -- 2. a big project ---------------------------------------------------------------
        big_name = "big-project"
        count, seconds = seed_packhouse(ph_data, "bench", [(big_name, args.big, 0)])
        log(f"seeded {count} files into Packhouse in-process in {seconds:.1f}s")
        ph_client = Client(ph.port)
        extra = iter(versions(10**6))
        for _ in range(args.big):
            next(extra)

        def ph_upload_one() -> None:
            v = next(extra)
            legacy_upload(ph_client, ph.upload, ph.auth, wheel_filename(big_name, v),
                          wheel_bytes(big_name, v))  # fmt: skip

        ph_big = big_project(ph_client, ph, big_name, ph_upload_one, rounds=args.cold_rounds)
        log(f"packhouse big project: {ph_big}")
        dv_client = Client(dv.port)
        dv_big_server = Server(
            "devpi", dv.port, dv.pid, f"/{DEVPI_USER}/big/+simple/", f"/{DEVPI_USER}/big/", dv.auth
        )
        start = time.perf_counter()
        for v in versions(args.devpi_big):
            legacy_upload(dv_client, dv_big_server.upload, dv.auth, wheel_filename(big_name, v),
                          wheel_bytes(big_name, v))  # fmt: skip
        log(
            f"uploaded {args.devpi_big} files to devpi over HTTP"
            f" in {time.perf_counter() - start:.1f}s"
        )
        dv_extra = iter(
            list(versions(args.devpi_big + 2 * args.cold_rounds + 20))[args.devpi_big :]
        )

        def dv_upload_one() -> None:
            v = next(dv_extra)
            legacy_upload(dv_client, dv_big_server.upload, dv.auth, wheel_filename(big_name, v),
                          wheel_bytes(big_name, v))  # fmt: skip

        dv_big = big_project(
            dv_client, dv_big_server, big_name, dv_upload_one, rounds=args.cold_rounds
        )
        log(f"devpi big project: {dv_big}")

        # -- 3. twine -----------------------------------------------------------------------
        twine_dir = tmp / "twine"
        twine_dir.mkdir()
        twine_files = [p for p in REAL_FILES if twine_accepts(p)][: args.twine_files]
        real_count = len(twine_files)
        twine_files += make_wheels(
            twine_dir / "synth", ["twine-synth"], args.twine_files - len(twine_files)
        )
        twine_times: dict[str, float] = {}
        for name, url, user, password in (
            ("packhouse", f"http://127.0.0.1:{ph.port}/pypi/twine/", "admin", ADMIN_PASSWORD),
            (
                "devpi",
                f"http://127.0.0.1:{dv.port}/{DEVPI_USER}/twine/",
                DEVPI_USER,
                DEVPI_PASSWORD,
            ),
        ):
            start = time.perf_counter()
            run(
                [
                    BIN / "twine", "upload", "--non-interactive", "--disable-progress-bar",
                    "--repository-url", url, "-u", user, "-p", password, *twine_files,
                ],
                env={**os.environ, "KEYRING_BACKEND": "keyring.backends.null.Keyring"},
            )  # fmt: skip
            twine_times[name] = time.perf_counter() - start
            log(f"twine upload of {len(twine_files)} files to {name}: {twine_times[name]:.2f}s")

        # -- 4. RSS -------------------------------------------------------------------------
        stored = len(dataset) * 2 + args.big + 2 * args.cold_rounds + len(twine_files)
        rss: tuple[float, float] | None = None
        if not args.skip_rss:
            rss, stored = measure_rss(args, ph_data, ph, ph_client, stored)
        dv_rss = rss_of(dv.pid)

        # -- the table ----------------------------------------------------------------------
        emit()
        emit(
            f"GET /…/simple/{project}/ ({args.per_project} files), wrk -t1 -c{args.connections}"
            f" -d{args.duration}s (best of {args.rounds}); servers on CPU {args.server_cpu},"
            f" wrk on CPU {args.wrk_cpu}"
        )
        emit()
        emit("| server | format | req/s | p99 ms | Packhouse / this |")
        emit("|---|---|---:|---:|---:|")
        for server in (ph, ph_auth, dv, ng):
            for kind in ("html", "json"):
                r = results[(server.name, kind)]
                base = results[("packhouse", kind)]
                note = "" if not r.errors else f" ({r.errors} errors)"
                emit(
                    f"| {server.name} | {kind} | {r.rps:,.0f}{note} | {r.p99_ms:.2f} |"
                    f" {ratio(base.rps, r.rps)} |"
                )
        emit()
        emit("| target | measured | ok |")
        emit("|---|---|---|")
        for kind in ("html", "json"):
            p = results[("packhouse", kind)].rps
            pa = results[("packhouse (auth)", kind)].rps
            d = results[("devpi", kind)].rps
            n = results[("nginx", kind)].rps
            emit(
                f"| {kind}: Packhouse / devpi ≥ {TARGETS['vs_devpi']:.0f}x | {p / d:.1f}x"
                f" (authorised: {pa / d:.1f}x) |"
                f" {'yes' if p / d >= TARGETS['vs_devpi'] else 'NO'} |"
            )
            emit(
                f"| {kind}: Packhouse / nginx ≥ {TARGETS['vs_nginx']}x | {p / n:.2f}x"
                f" (authorised: {pa / n:.2f}x) |"
                f" {'yes' if p / n >= TARGETS['vs_nginx'] else 'NO'} |"
            )
        emit()
        emit(
            f"Big project: Packhouse {args.big + 2 * args.cold_rounds} files (seeded in-process,"
            " then one HTTP upload"
            f" before each cold request); devpi {args.devpi_big + 2 * args.cold_rounds} files"
            " (over HTTP"
            + (", fewer: uploading to devpi is slow" if args.devpi_big < args.big else "")
            + "). Cold = the first request after an upload, warm = the median of 5 more."
        )
        emit()
        emit("| page | Packhouse ms | devpi ms | Packhouse / devpi |")
        emit("|---|---:|---:|---:|")
        for key in ("html_cold", "html_warm", "json_cold", "json_warm"):
            emit(
                f"| {key.replace('_', ' ')} | {ph_big[key]:.1f} | {dv_big[key]:.1f} |"
                f" {ratio(ph_big[key], dv_big[key])} |"
            )
        worst = max(ph_big.values())
        emit(
            f"| target: Packhouse < {TARGETS['big_ms']:.0f} ms | worst {worst:.1f} ms |"
            f" {'yes' if worst < TARGETS['big_ms'] else 'NO'} | |"
        )
        emit()
        t_ratio = twine_times["packhouse"] / twine_times["devpi"]
        emit(
            f"twine upload of {len(twine_files)} files ({real_count} real, the rest"
            " synthetic; twine 7 refuses the other real files' metadata):"
            f" Packhouse {twine_times['packhouse']:.2f}s, devpi {twine_times['devpi']:.2f}s,"
            f" ratio {t_ratio:.2f}x (target ≤ {TARGETS['twine']}x:"
            f" {'yes' if t_ratio <= TARGETS['twine'] else 'NO'})"
        )
        if rss is not None:
            emit(
                rss_line(rss, stored)
                + f"; devpi-server now: VmRSS {dv_rss[0]:.1f} MB, VmHWM {dv_rss[1]:.1f} MB"
            )
    finally:
        procs.stop_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
