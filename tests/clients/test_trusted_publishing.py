"""Trusted publishing end to end: the real server over TLS, a local OIDC issuer on loopback
(discovery document, JWKS, a GitHub-Actions-style token service), the CLI and the API that
register it, and the real `uv publish --trusted-publishing always` in a faked GitHub Actions
environment; bad identity tokens refused over HTTP with the reason; the prefix.dev-style
exchange for a conda channel, its raw token uploading through the prefix upload API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import make_wheel
from tests.clients.tls_server import Certificates, make_certificates, start_tls_server
from tests.conftest import CLIENT_ENV, VENV_BIN, RunningServer, stop_server
from tests.oidc_issuer import REQUEST_TOKEN, Issuer, github_identity, serve_issuer, unsigned

pytestmark = pytest.mark.clients

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT", "SSL_CERT_FILE", "SSL_CERT_DIR")
AUDIENCE = "127.0.0.1"  # the default: the host name of the server's URL


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with serve_issuer() as running:
        running.identity = github_identity("acme/app", "release")
        yield running


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, certs: Certificates, issuer: Issuer
) -> Iterator[RunningServer]:
    env = {"PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS": '["127.0.0.0/8"]'}
    running = start_tls_server(tmp_path_factory.mktemp("tp") / "data", certs, env)
    running.run_cli("oidc", "issuer", "add", "github", "--url", issuer.url)
    running.run_cli(
        "oidc", "publisher", "add", "--repo", "pypi/main", "--issuer", "github",
        "--claim", "repository=acme/app", "--claim", "environment=release",
    )  # fmt: skip
    yield running
    stop_server(running)


def uv_trusted_publish(
    server: RunningServer, certs: Certificates, issuer: Issuer, dist: Path
) -> subprocess.CompletedProcess[str]:
    """`uv publish --trusted-publishing always dist/*` to pypi/main as in a GitHub job."""
    return uv_publish_to(server, "main", certs, f"{issuer.url}/token?api-version=2.0", dist)


@pytest.fixture
def http(server: RunningServer, certs: Certificates) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, verify=certs.context(), timeout=60) as client:
        yield client


def test_uv_publish_with_trusted_publishing(
    server: RunningServer, certs: Certificates, issuer: Issuer, http: httpx.Client, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    make_wheel(dist, "ph-trusted", "1.0")
    result = uv_trusted_publish(server, certs, issuer, dist)
    assert result.returncode == 0, result.stdout + result.stderr
    page = http.get(
        "/pypi/main/simple/ph-trusted/",
        auth=("admin", server.admin_password),
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    assert [f["filename"] for f in page.json()["files"]] == ["ph_trusted-1.0-py3-none-any.whl"]
    journal = server.run_cli("journal", "--json").stdout
    entries = [json.loads(line) for line in journal.splitlines() if line.strip()]
    mint = [e for e in entries if e["action"] == "oidc.mint"]
    assert mint
    assert mint[-1]["detail"]["claims"]["repository"] == "acme/app"
    upload = [e for e in entries if e["action"].startswith("upload") and e.get("project")]
    assert upload[-1]["actor"] == "oidc:github:repo:acme/app:environment:release"
    assert "/token" in issuer.requests


def test_the_exchange_refuses_bad_identity_tokens_saying_why(
    http: httpx.Client, issuer: Issuer
) -> None:
    assert http.get("/_/oidc/audience").json() == {"audience": AUDIENCE}
    cases = {
        "expired at": issuer.token(AUDIENCE, exp=1_000_000_000),
        "not '127.0.0.1'": issuer.token("pypi"),
        "is not registered here": issuer.token(AUDIENCE, iss="https://token.example"),
        "unsigned": unsigned(issuer.claims(AUDIENCE)),
        "not a JWT": "garbage",
    }
    for reason, token in cases.items():
        answer = http.post("/_/oidc/mint-token", json={"token": token})
        assert answer.status_code == 400, (reason, answer.text)
        body = answer.json()
        assert body["message"] == "Token request failed"
        assert reason in body["errors"][0]["description"]
    token = issuer.token(AUDIENCE)
    first = http.post("/_/oidc/mint-token", json={"token": token})
    assert first.status_code == 200, first.text
    assert first.json()["success"] is True
    replayed = http.post("/_/oidc/mint-token", json={"token": token})
    assert replayed.status_code == 400
    assert "exchanged before" in replayed.json()["errors"][0]["description"]
    stranger = issuer.token(AUDIENCE, repository="mallory/app")
    refused = http.post("/_/oidc/mint-token", json={"token": stranger})
    assert refused.status_code == 403
    assert "repository=mallory/app" in refused.json()["errors"][0]["description"]
    assert http.post("/_/oidc/mint-token", content=b"{").status_code == 400
    # a minted token uploads, reads nothing else, and is burnt on request
    minted = first.json()["token"]
    assert http.get("/api/v1/tokens", auth=("__token__", minted)).status_code == 403
    assert http.post("/_/oidc/burn-token", json={"token": minted}).json() == {"success": True}
    assert http.get("/pypi/main/simple/", auth=("__token__", minted)).status_code == 401


def test_prefix_style_exchange_for_a_conda_channel(
    server: RunningServer, http: httpx.Client, issuer: Issuer
) -> None:
    admin = ("admin", server.admin_password)
    added = http.post(
        "/api/v1/oidc/publishers",
        auth=admin,
        json={
            "repository": "conda/main",
            "issuer": "github",
            "claims": {"repository": "acme/app", "ref": "refs/tags/v1.0"},
        },
    )
    assert added.status_code == 201, added.text
    listed = http.get("/api/v1/oidc/publishers", params={"repository": "conda/main"}, auth=admin)
    assert [p["claims"] for p in listed.json()] == [
        {"repository": "acme/app", "ref": "refs/tags/v1.0"}
    ]
    issuers = http.get("/api/v1/oidc/issuers", auth=admin).json()
    assert issuers["audience"] == AUDIENCE
    assert [i["name"] for i in issuers["issuers"]] == ["github"]
    answer = http.post("/api/oidc/mint_token", json={"token": issuer.token(AUDIENCE)})
    assert answer.status_code == 200, answer.text
    raw = answer.text
    assert raw.startswith("ph-")
    assert len(raw) == 46
    # the raw token works as rattler-build sends it, and only on conda/main
    upload = http.post(
        "/api/v1/upload/main",
        headers={"Authorization": f"Bearer {raw}"},
        files={"file": ("x.conda", b"not a package", "application/octet-stream")},
    )
    assert upload.status_code not in (401, 403), upload.text
    wrong = http.post("/api/oidc/mint_token", json={"token": issuer.token("prefix.dev")})
    assert wrong.status_code == 400
    assert "not '127.0.0.1'" in wrong.json()["detail"]
    paths = http.get("/api/v1/openapi.json").json()["paths"]
    assert "/oidc/publishers" in paths
    assert "/oidc/issuers" in paths
    removed = http.delete(f"/api/v1/oidc/publishers/{added.json()['id']}", auth=admin)
    assert removed.status_code == 200
    again = http.post("/api/oidc/mint_token", json={"token": issuer.token(AUDIENCE)})
    assert again.status_code == 403


def test_cli_lists_and_refuses(server: RunningServer) -> None:
    listed = server.run_cli("oidc", "publisher", "list", "--json").stdout
    rows = [json.loads(line) for line in listed.splitlines()]
    assert rows[0]["repository"] == "pypi/main"
    assert rows[0]["claims"] == {"repository": "acme/app", "environment": "release"}
    refused = server.run_cli(
        "oidc", "publisher", "add", "--repo", "pypi/main", "--issuer", "nope",
        "--claim", "repository=x", check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "no OIDC issuer named 'nope'" in refused.stderr
    bad = server.run_cli("oidc", "issuer", "add", "x", "--url", "https://10.255.255.1", check=False)
    assert bad.returncode == 1
    assert "10.255.255.1" in bad.stderr


ASSETS = Path(__file__).parents[1] / "data" / "attestations"
WHEEL = "rfc8785-0.1.2-py3-none-any.whl"


def test_pep740_attestations_are_stored_and_served_as_provenance(
    server: RunningServer, certs: Certificates, issuer: Issuer, http: httpx.Client, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    for name in (WHEEL, f"{WHEEL}.publish.attestation"):
        shutil.copy(ASSETS / name, dist / name)
    result = uv_trusted_publish(server, certs, issuer, dist)
    assert result.returncode == 0, result.stdout + result.stderr
    admin = ("admin", server.admin_password)
    page = http.get(
        "/pypi/main/simple/rfc8785/",
        auth=admin,
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    ).json()
    (entry,) = page["files"]
    sha = entry["hashes"]["sha256"]
    assert entry["provenance"] == f"../../../../files/{sha}/{WHEEL}.provenance"
    html = http.get("/pypi/main/simple/rfc8785/", auth=admin, headers={"Accept": "text/html"})
    assert f'data-provenance="../../../../files/{sha}/{WHEEL}.provenance"' in html.text
    served = http.get(f"/files/{sha}/{WHEEL}.provenance", auth=admin)
    assert served.status_code == 200, served.text
    sent = json.loads((ASSETS / f"{WHEEL}.publish.attestation").read_text())
    assert served.json() == {
        "version": 1,
        "attestation_bundles": [
            {
                "publisher": {
                    "kind": "github",
                    "repository": "acme/app",
                    "environment": "release",
                },
                "attestations": [sent],
            }
        ],
    }
    # a file without attestations has neither the key nor a provenance file
    other = http.get(
        "/pypi/main/simple/ph-trusted/",
        auth=admin,
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    ).json()["files"]
    assert all("provenance" not in f for f in other)
    missing = http.get(f"/files/{other[0]['hashes']['sha256']}/{other[0]['filename']}.provenance")
    assert missing.status_code == 401  # not public: the same answer as for any private file
    assert http.get(f"/files/{sha}/{WHEEL}.provenance").status_code == 401


def test_attestations_need_trusted_publishing_and_the_right_file(
    server: RunningServer, http: httpx.Client, issuer: Issuer, tmp_path: Path
) -> None:
    make_wheel(tmp_path, "ph-attested", "1.0")
    wheel = tmp_path / "ph_attested-1.0-py3-none-any.whl"
    form = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": "ph-attested",
        "version": "1.0",
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "metadata_version": "2.1",
        "attestations": (ASSETS / f"{WHEEL}.publish.attestation").read_text().join("[]"),
    }
    files = {"content": (wheel.name, wheel.read_bytes(), "application/octet-stream")}
    by_password = http.post(
        "/pypi/main/", data=form, files=files, auth=("admin", server.admin_password)
    )
    assert by_password.status_code == 400
    assert "only from uploads made by trusted publishing" in by_password.text
    minted = http.post("/_/oidc/mint-token", json={"token": issuer.token(AUDIENCE)}).json()
    wrong_file = http.post(
        "/pypi/main/", data=form, files=files, auth=("__token__", minted["token"])
    )
    assert wrong_file.status_code == 400
    assert f"is for '{WHEEL}', not for '{wheel.name}'" in wrong_file.text


SDIST = "pypi_attestations-0.0.19.tar.gz"


def test_attestations_verified_with_sigstore_when_enabled(
    tmp_path: Path, certs: Certificates, issuer: Issuer
) -> None:
    """A server with attestations_verify: the real attestations of pypi-attestations'
    release (signed by its GitHub workflow, logged in Rekor) verify offline for a publisher
    of that repository and are refused for one of another. The issuer is registered under
    GitHub's URL with keys from a file (as an air-gapped site would), and the local issuer
    signs for that URL."""
    token_service = f"{issuer.url}/token?api-version=2.0"
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(issuer.jwks()))
    env = {"PACKHOUSE_ATTESTATIONS_VERIFY": "true", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    running = start_tls_server(tmp_path / "data", certs, env)
    github = "https://token.actions.githubusercontent.com"
    try:
        running.run_cli("oidc", "issuer", "add", "gh", "--url", github, "--jwks-file", str(jwks))
        running.run_cli("repo", "create", "other")
        for repo, claim in (("main", "trailofbits/pypi-attestations"), ("other", "acme/app")):
            running.run_cli(
                "oidc", "publisher", "add", "--repo", f"pypi/{repo}", "--issuer", "gh",
                "--claim", f"repository={claim}",
            )  # fmt: skip
        saved = issuer.url, issuer.identity
        issuer.url = github
        try:
            dist = tmp_path / "dist"
            dist.mkdir()
            for name in (SDIST, f"{SDIST}.publish.attestation"):
                shutil.copy(ASSETS / name, dist / name)
            issuer.identity = github_identity("trailofbits/pypi-attestations", "release")
            ok = uv_publish_to(running, "main", certs, token_service, dist)
            assert ok.returncode == 0, ok.stdout + ok.stderr
            issuer.identity = github_identity("acme/app", "release")
            refused = uv_publish_to(running, "other", certs, token_service, dist)
        finally:
            issuer.url, issuer.identity = saved
        assert refused.returncode != 0
        assert "does not verify" in refused.stderr
        assert "https://github.com/acme/app" in refused.stderr
        with httpx.Client(base_url=running.url, verify=certs.context()) as client:
            page = client.get(
                "/pypi/main/simple/pypi-attestations/",
                auth=("admin", running.admin_password),
                headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            ).json()
        assert page["files"][0]["provenance"].endswith(f"{SDIST}.provenance")
    finally:
        stop_server(running)


def uv_publish_to(
    server: RunningServer, repo: str, certs: Certificates, token_service: str, dist: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in CA_VARIABLES and "GITHUB" not in k}
    env.update(CLIENT_ENV)
    env.update(
        SSL_CERT_FILE=str(certs.ca),
        GITHUB_ACTIONS="true",
        ACTIONS_ID_TOKEN_REQUEST_URL=token_service,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=REQUEST_TOKEN,
    )
    return subprocess.run(
        [
            str(VENV_BIN / "uv"),
            "publish",
            "--trusted-publishing",
            "always",
            "--publish-url",
            f"{server.url}/pypi/{repo}/",
            str(dist / "*"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


NOARCH = Path(__file__).parents[1] / "data" / "conda" / "conda" / "test-recipes" / "noarch"


def test_rattler_build_upload_prefix_with_trusted_publishing(
    server: RunningServer, certs: Certificates, issuer: Issuer, http: httpx.Client
) -> None:
    """py-rattler-build's prefix upload with no API key, in a faked GitHub Actions job: it
    asks for an identity token for the server's host, exchanges it at /api/oidc/mint_token
    and uploads with the raw token."""
    admin = ("admin", server.admin_password)
    added = http.post(
        "/api/v1/oidc/publishers",
        auth=admin,
        json={"repository": "conda/main", "issuer": "github", "claims": {"repository": "acme/app"}},
    )
    assert added.status_code == 201, added.text
    package = NOARCH / "dependency-1.0-0.conda"
    env = {k: v for k, v in os.environ.items() if k not in CA_VARIABLES and "GITHUB" not in k}
    env.update(
        SSL_CERT_FILE=str(certs.ca),
        GITHUB_ACTIONS="true",
        ACTIONS_ID_TOKEN_REQUEST_URL=f"{issuer.url}/token?api-version=2.0",
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=REQUEST_TOKEN,
    )
    code = (
        "from rattler_build.upload import upload_package_to_prefix as upload;"
        f" upload([{str(package)!r}], {server.url!r}, 'main', api_key=None)"
    )
    try:
        result = subprocess.run(
            [str(VENV_BIN / "python"), "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        http.delete(f"/api/v1/oidc/publishers/{added.json()['id']}", auth=admin)
    repodata = http.get("/conda/main/noarch/repodata.json", auth=admin).json()
    assert "dependency-1.0-0.conda" in repodata["packages.conda"]
