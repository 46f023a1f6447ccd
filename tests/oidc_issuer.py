"""A local OIDC issuer for the trusted-publishing tests: an RSA key pair, its discovery
document and JWKS served on loopback, and a GitHub-Actions-style token service
(`GET /token?audience=...` with `Authorization: Bearer <request token>` -> `{"value": JWT}`)
that signs the identity the test set."""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

REQUEST_TOKEN = "actions-request-token-for-tests"


@functools.cache
def _rsa_key(generation: int) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make: each generation once per test session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    algorithm: Any = (
        jwt.algorithms.RSAAlgorithm
        if isinstance(key, rsa.RSAPrivateKey)
        else (jwt.algorithms.ECAlgorithm)
    )
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, use="sig")
    return jwk


class Issuer:
    """Signs identity tokens; its keys can rotate (`rotate`) to test refetching."""

    def __init__(self) -> None:
        self.url = ""  # set once served
        self.generation = 0
        self.rsa = _rsa_key(0)
        self.kid = "key-1"
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.identity: dict[str, Any] = {}
        self.requests: list[str] = []  # paths asked, in order
        self.published: list[tuple[Any, str]] = [(self.rsa, self.kid), (self.ec, "ec-1")]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [_public_jwk(k, kid) for k, kid in self.published]}

    def rotate(self) -> None:
        self.generation += 1
        self.rsa = _rsa_key(self.generation)
        self.kid = f"key-{uuid.uuid4().hex[:8]}"
        self.published = [(self.rsa, self.kid), (self.ec, "ec-1")]

    def claims(self, audience: str, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.url,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            **self.identity,
            **extra,
        }

    def token(self, audience: str, *, algorithm: str = "RS256", **extra: Any) -> str:
        """A signed identity token for `audience`; `extra` claims override (None drops)."""
        claims = {k: v for k, v in self.claims(audience, **extra).items() if v is not None}
        if algorithm == "ES256":
            return jwt.encode(claims, self.ec, algorithm="ES256", headers={"kid": "ec-1"})
        return jwt.encode(claims, self.rsa, algorithm=algorithm, headers={"kid": self.kid})


def github_identity(repository: str = "acme/app", environment: str = "release") -> dict[str, Any]:
    """The claims GitHub Actions puts in an identity token (those uv reads among them)."""
    owner = repository.split("/")[0]
    return {
        "sub": f"repo:{repository}:environment:{environment}",
        "repository": repository,
        "repository_owner": owner,
        "repository_owner_id": "4242",
        "repository_id": "777",
        "workflow_ref": f"{repository}/.github/workflows/release.yml@refs/tags/v1.0",
        "job_workflow_ref": f"{repository}/.github/workflows/release.yml@refs/tags/v1.0",
        "ref": "refs/tags/v1.0",
        "environment": environment,
        "event_name": "push",
    }


def unsigned(claims: dict[str, Any]) -> str:
    """An `alg: none` token (no signature)."""
    return jwt.encode(claims, None, algorithm="none")


class _Handler(BaseHTTPRequestHandler):
    issuer: Issuer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.issuer.requests.append(parts.path)
        if parts.path == "/.well-known/openid-configuration":
            self._json(200, {"issuer": self.issuer.url, "jwks_uri": f"{self.issuer.url}/jwks"})
        elif parts.path == "/jwks":
            self._json(200, self.issuer.jwks())
        elif parts.path == "/token":
            if self.headers.get("Authorization", "").lower() != f"bearer {REQUEST_TOKEN}":
                self._json(401, {"message": "bad request token"})
                return
            audience = parse_qs(parts.query).get("audience", [""])[0]
            self._json(200, {"value": self.issuer.token(audience)})
        else:
            self._json(404, {"message": "not here"})


@contextmanager
def serve_issuer() -> Iterator[Issuer]:
    """The issuer on http://127.0.0.1:<port>, stopped afterwards."""
    issuer = Issuer()
    handler = type("Handler", (_Handler,), {"issuer": issuer})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
