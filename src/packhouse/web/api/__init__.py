"""The management API (FastAPI), mounted at `/api/v1`; its OpenAPI document is
`/api/v1/openapi.json`. Errors are the domain errors, mapped by `web/errors.py` to JSON
`{"detail": ...}`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from packhouse.errors import PackhouseError
from packhouse.web.api import accounts, conda, journal, oidc, promote, repositories, tokens
from packhouse.web.errors import handle_domain_error

PREFIX = "/api/v1"


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """422 naming each field and what is wrong with it, never echoing what was sent: a
    rejected value may be a password or a token."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422, headers={"Cache-Control": "no-store"})


def create_api() -> FastAPI:
    api = FastAPI(
        title="Packhouse management API",
        version="1",
        description="Users, groups, API tokens, repositories, permissions and the journal."
        " Authenticate with HTTP Basic (user and password, or `__token__` and a token) or"
        " `Authorization: Bearer <token>`.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        exception_handlers={
            PackhouseError: handle_domain_error,
            RequestValidationError: _invalid_request,
        },
    )
    for module in (accounts, tokens, repositories, promote, journal, conda, oidc):
        api.include_router(module.router)
    return api
