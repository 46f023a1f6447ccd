"""Trusted publishing's exchange endpoints, where the clients look for them:

- PyPI's (Warehouse), used by `uv publish --trusted-publishing`, twine and
  pypa/gh-action-pypi-publish, all at the server's root: `GET /_/oidc/audience` ->
  `{"audience": ...}`; `POST /_/oidc/mint-token` with `{"token": JWT}` -> `{"success": true,
  "token": ..., "expires": <unix seconds>}` for a PyPI repository's publisher; refusals as
  Warehouse sends them, `{"message": ..., "errors": [{"code": ..., "description": ...}]}`.
  `POST /_/oidc/burn-token` with `{"token": <minted>}` revokes a minted token early.
- prefix.dev's, used by rattler-build and pixi for conda channels: `POST /api/oidc/mint_token`
  with `{"token": JWT}` -> the raw token as the body (sent back as `Authorization: Bearer`).

The work is services/oidc.py; a refusal is a domain error mapped by web/errors.py.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from packhouse.errors import InvalidInput, PackhouseError, TooLarge
from packhouse.types import Format
from packhouse.web.deps import services
from packhouse.web.errors import error_headers, status_of

MAX_BODY_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store"}


async def _token_field(request: Request) -> str:
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > MAX_BODY_BYTES:
            raise TooLarge(f"the request body is over {MAX_BODY_BYTES} bytes")
    try:
        body: Any = json.loads(received)
    except ValueError:
        raise InvalidInput('the body is not JSON: send {"token": "<JWT>"}') from None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise InvalidInput('the body has no "token" string: send {"token": "<JWT>"}')
    return token


def _warehouse_error(exc: PackhouseError) -> Response:
    code = "invalid-token" if status_of(exc) == 400 else "invalid-publisher"
    return JSONResponse(
        {
            "message": "Token request failed",
            "errors": [{"code": code, "description": exc.message}],
        },
        status_code=status_of(exc),
        headers=error_headers(exc),
    )


async def audience(request: Request) -> Response:
    return JSONResponse({"audience": services(request).oidc.audience()}, headers=_NO_STORE)


async def mint_token(request: Request) -> Response:
    svc = services(request)
    try:
        token = await _token_field(request)
        minted = await run_in_threadpool(svc.oidc.mint, token, Format.PYPI)
    except PackhouseError as exc:
        return _warehouse_error(exc)
    return JSONResponse(
        {"success": True, "token": minted.secret, "expires": int(minted.expires_at.timestamp())},
        headers=_NO_STORE,
    )


async def burn_token(request: Request) -> Response:
    svc = services(request)
    try:
        token = await _token_field(request)
        await run_in_threadpool(svc.oidc.burn, token)
    except PackhouseError as exc:
        return _warehouse_error(exc)
    return JSONResponse({"success": True}, headers=_NO_STORE)


async def prefix_mint_token(request: Request) -> Response:
    svc = services(request)
    token = await _token_field(request)
    minted = await run_in_threadpool(svc.oidc.mint, token, Format.CONDA)
    return PlainTextResponse(minted.secret, headers=_NO_STORE)


routes = [
    Route("/_/oidc/audience", audience, methods=["GET"]),
    Route("/_/oidc/mint-token", mint_token, methods=["POST"]),
    Route("/_/oidc/burn-token", burn_token, methods=["POST"]),
    Route("/api/oidc/mint_token", prefix_mint_token, methods=["POST"]),
]
