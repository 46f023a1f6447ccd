"""schemathesis against `/api/v1`'s OpenAPI document on the real server: examples, coverage
and fuzzing phases for every operation, as an administrator and anonymously; no answer may
be a 500. Small by default (PACKHOUSE_FUZZ_EXAMPLES=5 per operation); raise it for a
longer run. The 500s it found, and those found by hand beside it, have their own tests."""

from __future__ import annotations

import os
import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import VENV_BIN, RunningServer, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
FUZZ_ADMIN = "fuzz-root-q7"  # a name the fuzzer will not guess: it may disable whom it names
ISSUER_ADMIN = "issuer-root-k3"  # one the fuzzer never sees, for the tests after it
FUZZ_PASSWORD = "fuzz-Pa55word-for-tests"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of its own: the fuzzer creates, changes and deletes what it can."""
    # the fuzzer sends wrong credentials and may change its own user's password: failed
    # logins are not under test here, and must not lock the address out for later tests
    running = start_server(
        tmp_path_factory.mktemp("fuzz") / "data", {"PACKHOUSE_LOGIN_FAILURE_LIMIT": "1000000"}
    )
    running.run_cli("user", "add", FUZZ_ADMIN, "--admin", input=FUZZ_PASSWORD + "\n")
    running.run_cli("user", "add", ISSUER_ADMIN, "--admin", input=FUZZ_PASSWORD + "\n")
    yield running
    stop_server(running)


def _schemathesis(
    server: RunningServer, examples: int, *auth: str
) -> subprocess.CompletedProcess[str]:
    seed = str(random.randrange(1 << 30))
    return subprocess.run(
        [
            str(VENV_BIN / "schemathesis"), "run", f"{server.url}/api/v1/openapi.json",
            "--checks", "no_internal_error", "--max-examples", str(examples), "--seed", seed,
            "--phases", "examples,coverage,fuzzing", "--workers", "1", "--no-color",
            "--request-timeout", "30", *auth,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.reliability.schemathesis_hooks",
            "PYTHONPATH": str(ROOT),
        },
        timeout=600,
    )  # fmt: skip


@pytest.mark.parametrize("who", ["admin", "anonymous"])
def test_no_500_anywhere_in_the_management_api(fuzzed: RunningServer, who: str) -> None:
    auth = ["--auth", f"{FUZZ_ADMIN}:{FUZZ_PASSWORD}"] if who == "admin" else []
    examples = int(os.environ.get("PACKHOUSE_FUZZ_EXAMPLES", "5"))
    # anonymous callers are refused early everywhere: fewer examples say as much
    result = _schemathesis(fuzzed, examples if auth else max(1, examples // 3), *auth)
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert tested, report
    assert int(tested.group(1)) >= 25, report  # every operation was reached
    cases = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert cases, report
    assert int(cases.group(1)) > 50, report
    assert int(cases.group(1)) == int(cases.group(2)), report
    assert "unexpected error" not in fuzzed.log_text(), fuzzed.log_text()[-5000:]


@pytest.mark.parametrize(
    "url", ["http://[::1", "https://[bad/", "https://issuer.example:99999/", "http://x:port/"]
)
def test_an_issuer_url_that_does_not_parse_is_a_400(fuzzed: RunningServer, url: str) -> None:
    # found beside the fuzzer: urlsplit's ValueError escaped as a 500
    # an admin the fuzzer does not know of (it may have changed or disabled its own)
    with httpx.Client(base_url=fuzzed.url, auth=(ISSUER_ADMIN, FUZZ_PASSWORD)) as client:
        answer = client.post("/api/v1/oidc/issuers", json={"name": "bad", "url": url})
    assert answer.status_code == 400, answer.text
    assert "is not a valid URL" in answer.json()["detail"]
