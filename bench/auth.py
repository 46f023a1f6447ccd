"""What authentication costs: twine uploads with a password vs a token, and the simple
page's throughput for authorised callers vs anonymous ones.

    .venv/bin/python bench/auth.py                     # about 4 minutes
    .venv/bin/python bench/auth.py --rounds 1 --duration 5

Starts `packhouse serve` pinned to core 0 (`taskset -c 0`) on a fresh data directory, then:

1. `twine upload` of 50 wheels (10 projects x 5 versions) with the admin's password, and 50
   other wheels of the same sizes with an upload token; --rounds times, alternating which goes
   first, fresh wheels each round; the median of the per-round ratios. Target: password <=
   1.2x token.
2. wrk on core 1 (`taskset -c 1 wrk -t1 -c50 -d10s`) against one project's simple page in a
   repository that anonymous callers may read: Basic password (the remembered
   verification), Basic `__token__` + token, and Bearer token, each run paired with an
   anonymous run beside it, --rounds times; the median of the per-pair ratios. Target: each
   authorised figure >= 0.9x anonymous.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from wheelgen import make_wheels  # noqa: E402

BIN = Path(sys.executable).parent
ADMIN_PASSWORD = "bench-admin-password"
CLEAN_ENV = {**os.environ, "PIP_CONFIG_FILE": "/dev/null", "UV_NO_CONFIG": "1"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def cli(data: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(BIN / "packhouse"), *args, "--data", str(data)],
        input=stdin, capture_output=True, text=True, check=True, env=CLEAN_ENV,
    )  # fmt: skip
    return result.stdout


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):  # noqa: S310 (our server)
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


def twine(url: str, repo: str, user: str, secret: str, files: list[Path]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar",
         "--repository-url", f"{url}/pypi/{repo}/", "-u", user, "-p", secret,
         *map(str, files)],
        check=True, capture_output=True, env=CLEAN_ENV,
    )  # fmt: skip
    return time.perf_counter() - start


def wrk(url: str, duration: int, header: str | None) -> float:
    argv = ["taskset", "-c", "1", "wrk", "-t1", "-c50", f"-d{duration}s"]
    if header:
        argv += ["-H", f"Authorization: {header}"]
    out = subprocess.run([*argv, url], check=True, capture_output=True, text=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out:
        raise SystemExit(f"wrk failed or saw errors:\n{out}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="twine rounds (median)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")

    tmp = Path(tempfile.mkdtemp(prefix="packhouse-bench-auth-"))
    data, port = tmp / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**CLEAN_ENV, "PACKHOUSE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with (tmp / "server.log").open("wb") as server_log:
        server = subprocess.Popen(
            ["taskset", "-c", "0", str(BIN / "packhouse"), "serve", "--data", str(data),
             "--port", str(port)],
            stdout=server_log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_ready(url)
        cli(data, "repo", "create", "bench", "--public")
        token = cli(
            data, "token", "create", "--user", "admin", "--repo", "bench", "--scope", "upload",
            "--name", "bench",
        ).strip()  # fmt: skip

        # 1. twine: 50 files, password vs token
        by_password: list[float] = []
        by_token: list[float] = []
        for i in range(args.rounds):
            pw_files = make_wheels(tmp / f"pw{i}", [f"pw{i}-p{j}" for j in range(10)], 5)
            tok_files = make_wheels(tmp / f"tok{i}", [f"tk{i}-p{j}" for j in range(10)], 5)
            runs = [
                (by_password, "admin", ADMIN_PASSWORD, pw_files),
                (by_token, "__token__", token, tok_files),
            ]
            for bucket, user, secret, files in runs if i % 2 == 0 else runs[::-1]:
                bucket.append(twine(url, "bench", user, secret, files))
            log(f"twine round {i + 1}: password {by_password[-1]:.2f}s, token {by_token[-1]:.2f}s")
        pw_s, tok_s = statistics.median(by_password), statistics.median(by_token)
        pw_ratio = [p / t for p, t in zip(by_password, by_token, strict=True)]

        # 2. wrk: the simple page of a project with 5 files. The machine may be shared, so
        # each authorised run is paired with an anonymous run next to it (alternating which
        # goes first), and the median of the per-pair ratios is reported.
        page = f"{url}/pypi/bench/simple/pw0-p0/"
        headers = {
            "Basic password": basic("admin", ADMIN_PASSWORD),
            "Basic __token__": basic("__token__", token),
            "Bearer token": f"Bearer {token}",
        }
        wrk(page, 2, headers["Basic password"])  # warm up: caches, remembered verification
        anonymous: list[float] = []
        rates: dict[str, list[float]] = {name: [] for name in headers}
        ratios: dict[str, list[float]] = {name: [] for name in headers}
        for i in range(args.rounds):
            for name, header in headers.items():
                if i % 2 == 0:
                    anon, auth = wrk(page, args.duration, None), wrk(page, args.duration, header)
                else:
                    auth, anon = wrk(page, args.duration, header), wrk(page, args.duration, None)
                anonymous.append(anon)
                rates[name].append(auth)
                ratios[name].append(auth / anon)
                log(f"wrk round {i + 1}: anonymous {anon:,.0f}, {name} {auth:,.0f} req/s")
    finally:
        server.terminate()
        server.wait(timeout=30)

    log_text = (tmp / "server.log").read_text(errors="replace")
    if token in log_text or ADMIN_PASSWORD in log_text:
        raise SystemExit("a secret reached the server log")
    shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    print("| measure | median | ratio (median of pairs) | target |")
    print("| --- | ---: | ---: | --- |")
    print(f"| twine upload, 50 files, token | {tok_s:.2f} s | 1.00x | |")
    print(f"| twine upload, 50 files, password | {pw_s:.2f} s | {med(pw_ratio):.2f}x | <= 1.2x |")
    print(f"| simple page, anonymous | {med(anonymous):,.0f} req/s | 1.00x | |")
    for name in headers:
        print(
            f"| simple page, {name} | {med(rates[name]):,.0f} req/s | {med(ratios[name]):.2f}x"
            " | >= 0.9x |"
        )


if __name__ == "__main__":
    main()
