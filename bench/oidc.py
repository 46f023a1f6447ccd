"""Trusted publishing's token exchange, once the issuer's keys are cached.

    .venv/bin/python bench/oidc.py                  # about 30 s
    .venv/bin/python bench/oidc.py --exchanges 500

Starts `packhouse serve` (granian, plain HTTP on loopback) on a fresh data directory and a
local OIDC issuer (tests/oidc_issuer.py: RSA-2048 key, discovery document, JWKS), registers
the issuer and a publisher with the CLI, signs --exchanges identity tokens beforehand (RS256),
then, one request at a time over one keep-alive connection:

1. `POST /_/oidc/mint-token` for each token (verify the signature against the cached JWKS,
   check the claims, match the publisher, remember the jti, mint, journal);
2. the peer: `POST /api/v1/tokens` creating an ordinary upload token with the admin's
   token (a database write and a journal entry as well, no signature to verify).

Prints median and p95 milliseconds of each and the ratio. Goal (issue 12): an exchange under
20 ms after the keys are cached.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.oidc_issuer import github_identity, serve_issuer  # noqa: E402

BIN = Path(sys.executable).parent
ADMIN_PASSWORD = "bench-admin-password"
AUDIENCE = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(client: httpx.Client, requests: list[tuple[str, dict[str, object]]]) -> list[float]:
    took = []
    for path, body in requests:
        start = time.perf_counter()
        answer = client.post(path, json=body)
        took.append((time.perf_counter() - start) * 1000)
        assert answer.status_code in (200, 201), answer.text
    return took


def summary(name: str, values: list[float]) -> tuple[str, float]:
    ordered = sorted(values)
    median = statistics.median(ordered)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(f"| {name} | {len(values)} | {median:.2f} | {p95:.2f} |")
    return name, median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exchanges", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-oidc-"))
    data = work / "data"
    port = free_port()
    env = {
        **os.environ,
        "PACKHOUSE_DATA": str(data),
        "PACKHOUSE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "PACKHOUSE_OIDC_AUDIENCE": AUDIENCE,
        "PACKHOUSE_ACCESS_LOG": "false",
    }
    with serve_issuer() as issuer:
        issuer.identity = github_identity()
        server = subprocess.Popen(
            [str(BIN / "packhouse"), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)

            def cli(*argv: str) -> str:
                return subprocess.run(
                    [str(BIN / "packhouse"), *argv], env=env, check=True, capture_output=True,
                    text=True,
                ).stdout  # fmt: skip

            cli("oidc", "issuer", "add", "github", "--url", issuer.url)
            cli("oidc", "publisher", "add", "--repo", "pypi/main", "--issuer", "github",
                "--claim", "repository=acme/app", "--claim", "environment=release")  # fmt: skip
            admin_token = cli(
                "token", "create", "--user", "admin", "--scope", "admin", "--name", "bench"
            ).strip()
            tokens = [issuer.token(AUDIENCE) for _ in range(args.exchanges + 10)]
            with httpx.Client(base_url=url, timeout=30) as client:
                warm = [("/_/oidc/mint-token", {"token": t}) for t in tokens[:10]]
                timed(client, warm)  # the keys are read once, by `issuer add`; warm the path
                exchanges = timed(
                    client, [("/_/oidc/mint-token", {"token": t}) for t in tokens[10:]]
                )
            with httpx.Client(
                base_url=url, timeout=30, headers={"Authorization": f"Bearer {admin_token}"}
            ) as client:
                body = {"user": "admin", "repositories": ["pypi/main"], "actions": ["upload"]}
                peer = timed(
                    client,
                    [("/api/v1/tokens", {**body, "name": f"t{i}"}) for i in range(args.exchanges)],
                )
            jwks_reads = issuer.requests.count("/jwks")
        finally:
            server.terminate()
            server.wait(15)
            shutil.rmtree(work, ignore_errors=True)
    print("| request | n | median (ms) | p95 (ms) |")
    print("| --- | ---: | ---: | ---: |")
    _, ex = summary("POST /_/oidc/mint-token (keys cached)", exchanges)
    _, pe = summary("peer: POST /api/v1/tokens", peer)
    print(f"\nexchange / peer: {ex / pe:.2f}x; JWKS fetched {jwks_reads} time(s) in all")


if __name__ == "__main__":
    main()
