"""The app factory. Nothing is built at import time: `create_app(settings)` builds the
stores in the lifespan and hangs them on `app.state.services`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from packhouse.config import Settings
from packhouse.errors import PackhouseError
from packhouse.web.accesslog import AccessLog
from packhouse.web.errors import handle_domain_error, handle_unexpected
from packhouse.web.routes import files, ops, pypi
from packhouse.wiring import Services, build_context

log = logging.getLogger("packhouse.web")


async def root(request: Request) -> Response:
    return RedirectResponse("/pypi/main/simple/", status_code=302)


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    """Build the ASGI app. Given `services`, the app uses them (tests); otherwise it builds
    its own from `settings` when it starts."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = services is None
        svc = services or Services.of(build_context(settings, migrate=True))
        app.state.services = svc
        app.state.metrics_registry = CollectorRegistry()
        try:
            yield
        finally:
            if own:
                svc.close()

    middleware: list[Middleware] = []
    if settings.access_log:
        middleware.append(Middleware(AccessLog))
    app = Starlette(
        routes=[Route("/", root), *ops.routes, *pypi.routes, *files.routes],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={PackhouseError: handle_domain_error, Exception: handle_unexpected},
    )
    return app
