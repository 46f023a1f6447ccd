"""Real pip, uv, twine and poetry against a private repository on the real server process:
tokens in URLs and in each client's credential settings, refusals, the failed-login limit,
and no secret in the server's log (checked when the module's server stops, after every test
of the module ran)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.conftest import CLIENT_ENV, VENV_BIN, RunningServer, start_server, stop_server

pytestmark = pytest.mark.clients

WINDOW = 3  # seconds: the failed-login window of this module's server
LIMIT = 4
DEV_PASSWORD = "dev-Pa55word-long-enough"
# every secret this module hands to a client; none may appear in the server's log
SECRETS: list[str] = []
# user names the secrets are sent with in Basic credentials
BASIC_USERS = ("dev", "admin", "__token__")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("auth-server") / "data"
    running = start_server(
        data,
        {
            "PACKHOUSE_LOGIN_FAILURE_LIMIT": str(LIMIT),
            "PACKHOUSE_LOGIN_FAILURE_WINDOW": str(WINDOW),
        },
    )
    SECRETS.extend([running.admin_password, DEV_PASSWORD])
    running.run_cli("user", "add", "dev", input=DEV_PASSWORD + "\n")
    running.run_cli("repo", "create", "other")
    running.run_cli("repo", "grant", "main", "dev", "upload")
    running.run_cli("repo", "grant", "other", "dev", "read")
    yield running
    try:
        send_every_kind_of_secret(running)
    finally:
        stop_server(running)
    log = running.log_text()
    # the access log ran and masked a URL token, so the check below is not vacuous
    assert '"GET /t/***/pypi/main/simple/' in log
    assert leaked(log, SECRETS) == []


def send_every_kind_of_secret(server: RunningServer) -> None:
    """A URL token, a Bearer token, Basic tokens and passwords, right and wrong, whichever
    tests of the module ran before."""
    secret = token(server, "--user", "dev", "--repo", "main", "--name", "log-check")
    wrong = "wrong-Pa55word-for-the-log"
    SECRETS.append(wrong)
    sends: list[tuple[str, dict[str, str]]] = [
        (f"/t/{secret}/pypi/main/simple/", {}),
        ("/pypi/main/simple/", {"Authorization": f"Bearer {secret}"}),
        ("/pypi/main/simple/", {"Authorization": basic_header("__token__", secret)}),
        ("/pypi/main/simple/", {"Authorization": basic_header("dev", DEV_PASSWORD)}),
        ("/pypi/main/simple/", {"Authorization": basic_header("dev", wrong)}),
        (f"/t/{secret}/no/such/path", {}),
    ]
    for path, headers in sends:
        httpx.get(server.url + path, headers=headers, timeout=30)


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def leaked(log: str, secrets: Iterable[str]) -> list[str]:
    """The secrets found in `log`, as sent or inside Basic credentials."""
    found = []
    for secret in secrets:
        forms = [secret] + [basic_header(u, secret).split()[1] for u in BASIC_USERS]
        if any(form in log for form in forms):
            found.append(secret[:6] + "…")
    return found


def test_the_log_check_finds_a_secret_however_it_was_logged() -> None:
    secret = "ph_" + "Z" * 43
    assert leaked(f'127.0.0.1 "GET /t/{secret}/pypi/main/" 200', [secret]) == ["ph_ZZZ…"]
    header = basic_header("dev", "a-Password")
    assert leaked(f"Authorization: {header}", ["a-Password"]) == ["a-Pass…"]
    assert leaked('127.0.0.1 "GET /t/***/pypi/main/" 200', [secret, "a-Password"]) == []


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dist")
    make_wheel(directory, "ph-secret-base", "1.0")
    make_wheel(directory, "ph-secret-app", "1.0", requires=["ph-secret-base>=1.0"])
    return directory


def token(server: RunningServer, *args: str) -> str:
    secret = server.run_cli("token", "create", *args).stdout.strip()
    assert secret.startswith("ph-"), secret
    SECRETS.append(secret)
    return secret


def run(*argv: str | Path, env: dict[str, str] | None = None, check: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    result = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env={**os.environ, **CLIENT_ENV, **(env or {})},
        timeout=300,
        cwd=cwd,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result


def twine(server: RunningServer, secret: str, *files: Path, repo: str = "main",
          check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return run(
        VENV_BIN / "twine", "upload", "--non-interactive", "--disable-progress-bar",
        "--repository-url", f"{server.url}/pypi/{repo}/", "-u", "__token__", "-p", secret,
        *files, check=check,
    )  # fmt: skip


def status(server: RunningServer, path: str, secret: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.get(server.url + path, headers=headers, timeout=30).status_code


def installed(target: Path) -> set[str]:
    return {p.name for p in target.iterdir() if p.suffix == ".py"}


# -- uploads ----------------------------------------------------------------------------


def test_twine_uploads_with_a_token_and_a_read_token_is_refused(
    server: RunningServer, dist: Path
) -> None:
    reader = token(server, "--user", "dev", "--repo", "main", "--name", "read-only")
    refused = twine(server, reader, *sorted(dist.iterdir()), check=False)
    assert refused.returncode != 0
    assert "403" in refused.stdout + refused.stderr
    uploader = token(server, "--user", "dev", "--repo", "pypi/main", "--scope", "upload")
    twine(server, uploader, *sorted(dist.iterdir()))
    journal = server.run_cli("journal", "--repo", "main", "--action", "upload", "--json").stdout
    assert journal.count('"actor": "dev"') == 2


# -- installs ---------------------------------------------------------------------------


def test_pip_installs_with_a_token_in_the_index_url(server: RunningServer, tmp_path: Path) -> None:
    secret = token(server, "--user", "dev", "--repo", "main", "--name", "pip")
    index = f"http://__token__:{secret}@{server.host}/pypi/main/simple/"
    run(VENV_BIN / "python", "-m", "pip", "install", "--target", tmp_path, "--index-url", index,
        "ph-secret-app")  # fmt: skip
    assert installed(tmp_path) == {"ph_secret_app.py", "ph_secret_base.py"}


def test_pip_installs_with_a_token_in_the_path(server: RunningServer, tmp_path: Path) -> None:
    secret = token(server, "--user", "dev", "--repo", "main", "--name", "url-token")
    index = f"{server.url}/t/{secret}/pypi/main/simple/"
    run(VENV_BIN / "python", "-m", "pip", "install", "--target", tmp_path, "--index-url", index,
        "ph-secret-app")  # fmt: skip
    assert installed(tmp_path) == {"ph_secret_app.py", "ph_secret_base.py"}


def test_uv_installs_with_a_token_in_the_url_and_with_index_credentials(
    server: RunningServer, tmp_path: Path
) -> None:
    secret = token(server, "--user", "dev", "--repo", "main", "--name", "uv")
    in_url = tmp_path / "in-url"
    run(VENV_BIN / "uv", "pip", "install", "--target", in_url, "--python", VENV_BIN / "python",
        "--index-url", f"http://__token__:{secret}@{server.host}/pypi/main/simple/",
        "ph-secret-app")  # fmt: skip
    assert installed(in_url) == {"ph_secret_app.py", "ph_secret_base.py"}

    named = tmp_path / "named"
    args = (
        VENV_BIN / "uv", "pip", "install", "--target", named, "--python", VENV_BIN / "python",
        "--index", f"private={server.url}/pypi/main/simple/",
        "--default-index", "http://127.0.0.1:9/simple/",  # nothing listens: never a fallback
        "ph-secret-app",
    )  # fmt: skip
    without = run(*args, check=False)
    assert without.returncode != 0
    assert "401" in without.stderr or "Unauthorized" in without.stderr, without.stderr
    creds = {"UV_INDEX_PRIVATE_USERNAME": "__token__", "UV_INDEX_PRIVATE_PASSWORD": secret}
    run(*args, env=creds)
    assert installed(named) == {"ph_secret_app.py", "ph_secret_base.py"}


@pytest.mark.skipif(shutil.which("poetry", path=str(VENV_BIN)) is None, reason="needs poetry")
def test_poetry_publishes_and_locks_with_http_basic_settings(
    server: RunningServer, tmp_path: Path
) -> None:
    secret = token(server, "--user", "dev", "--repo", "main", "--scope", "upload", "--name", "po")
    project = tmp_path / "proj"
    (project / "ph_poetry_pkg").mkdir(parents=True)
    (project / "ph_poetry_pkg" / "__init__.py").write_text("VERSION = '0.1.0'\n")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "ph-poetry-pkg"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["ph-secret-app>=1.0"]\n\n'
        "[[tool.poetry.source]]\n"
        f'name = "private"\nurl = "{server.url}/pypi/main/simple/"\npriority = "primary"\n\n'
        '[build-system]\nrequires = ["poetry-core>=2.0"]\n'
        'build-backend = "poetry.core.masonry.api"\n'
    )
    env = {
        "POETRY_REPOSITORIES_PRIVATE_URL": f"{server.url}/pypi/main/",
        "POETRY_HTTP_BASIC_PRIVATE_USERNAME": "__token__",
        "POETRY_HTTP_BASIC_PRIVATE_PASSWORD": secret,
        "POETRY_CACHE_DIR": str(tmp_path / "cache"),
        "POETRY_CONFIG_DIR": str(tmp_path / "config"),
        "POETRY_NO_INTERACTION": "1",
    }
    poetry = VENV_BIN / "poetry"
    run(poetry, "lock", env=env, cwd=project)
    lock = (project / "poetry.lock").read_text()
    assert 'name = "ph-secret-base"' in lock
    assert secret not in lock
    run(poetry, "build", "--format", "wheel", env=env, cwd=project)
    run(poetry, "publish", "-r", "private", env=env, cwd=project)
    assert status(server, "/pypi/main/simple/ph-poetry-pkg/", secret) == 200


# -- refusals ---------------------------------------------------------------------------


def test_anonymous_gets_401_for_existing_and_missing_projects(server: RunningServer) -> None:
    paths = ("/pypi/main/simple/", "/pypi/main/simple/ph-secret-app/",
             "/pypi/main/simple/no-such-thing/", "/pypi/main/pypi/ph-secret-app/json")  # fmt: skip
    for path in paths:
        response = httpx.get(server.url + path, timeout=30)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Basic realm=")


def test_pip_without_credentials_is_answered_401_not_404(
    server: RunningServer, tmp_path: Path
) -> None:
    # pip only says "no matching distribution"; the server's log shows what it answered
    result = run(VENV_BIN / "python", "-m", "pip", "install", "--target", tmp_path,
                 "--index-url", f"{server.url}/pypi/main/simple/", "ph-secret-app",
                 check=False)  # fmt: skip
    assert result.returncode != 0
    assert '"GET /pypi/main/simple/ph-secret-app/" 401' in server.log_text()
    assert '"GET /pypi/main/simple/ph-secret-app/" 404' not in server.log_text()


def test_a_token_for_one_repository_cannot_read_another(server: RunningServer) -> None:
    only_other = token(server, "--user", "dev", "--repo", "other", "--name", "other")
    assert status(server, "/pypi/other/simple/", only_other) == 200
    assert status(server, "/pypi/main/simple/", only_other) == 403
    assert status(server, "/pypi/main/simple/no-such-thing/", only_other) == 403


def test_expired_revoked_and_malformed_tokens_get_401(server: RunningServer) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=8)
    expiring = token(server, "--user", "dev", "--repo", "main", "--expires", soon.isoformat())
    assert status(server, "/pypi/main/simple/", expiring) == 200
    revoked = token(server, "--user", "dev", "--repo", "main", "--name", "to-revoke")
    assert status(server, "/pypi/main/simple/", revoked) == 200
    listed = server.run_cli("token", "list", "--user", "dev", "--json").stdout
    (token_id,) = [
        str(t["id"]) for t in map(json.loads, listed.splitlines()) if t["name"] == "to-revoke"
    ]
    assert revoked not in listed
    server.run_cli("token", "revoke", token_id)
    assert status(server, "/pypi/main/simple/", revoked) == 401
    for malformed in ("ph_short", "ph_" + "A" * 43, "garbage"):
        assert status(server, "/pypi/main/simple/", malformed) == 401
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)
    response = httpx.get(server.url + "/pypi/main/simple/",
                         headers={"Authorization": f"Bearer {expiring}"}, timeout=30)  # fmt: skip
    assert response.status_code == 401
    assert "expired" in response.text


def test_a_disabled_users_tokens_stop_at_once(server: RunningServer) -> None:
    secret = token(server, "--user", "dev", "--repo", "main", "--name", "disable-me")
    assert status(server, "/pypi/main/simple/", secret) == 200
    server.run_cli("user", "disable", "dev")
    try:
        assert status(server, "/pypi/main/simple/", secret) == 401
    finally:
        server.run_cli("user", "enable", "dev")
    assert status(server, "/pypi/main/simple/", secret) == 200


def test_failed_logins_are_limited_then_released(server: RunningServer) -> None:
    def basic(password: str) -> int:
        encoded = base64.b64encode(f"dev:{password}".encode()).decode()
        response = httpx.get(server.url + "/pypi/main/simple/",
                             headers={"Authorization": f"Basic {encoded}"}, timeout=30)  # fmt: skip
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) <= WINDOW
        return response.status_code

    time.sleep(WINDOW)  # start from a clean window
    assert [basic("wrong") for _ in range(LIMIT)] == [401] * LIMIT
    assert basic(DEV_PASSWORD) == 429
    time.sleep(WINDOW + 0.5)
    assert basic(DEV_PASSWORD) == 200
