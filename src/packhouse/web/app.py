"""The app factory. Nothing is built at import time: `create_app(settings)` builds the
stores in the lifespan and hangs them on `app.state.services`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount

from packhouse.config import Settings
from packhouse.errors import PackhouseError
from packhouse.services.artifacts import abandoned_temp_files
from packhouse.services.pypi_api import fill_all_parts
from packhouse.web.accesslog import AccessLog, RequestMetrics, install_log_redaction
from packhouse.web.api import PREFIX as API_PREFIX
from packhouse.web.api import create_api
from packhouse.web.errors import (
    handle_domain_error,
    handle_http_error,
    handle_os_error,
    handle_unexpected,
)
from packhouse.web.routes import conda, conda_upload_apis, files, oidc, ops, pypi
from packhouse.web.routes.ops import ServiceCollector
from packhouse.web.security import NoReferrer, PublicOrigin, UrlToken
from packhouse.web.ui import account as ui_account
from packhouse.web.ui import admin as ui_admin
from packhouse.web.ui import routes as ui_routes
from packhouse.wiring import Services, build_context

log = logging.getLogger("packhouse.web")


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    """Build the ASGI app. Given `services`, the app uses them (tests); otherwise it builds
    its own from `settings` when it starts."""

    api = create_api()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = services is None
        svc = services or Services.of(build_context(settings, migrate=True))
        if own:
            # a worker started again after one died (kill -9) clears the temporary files
            # the dead one left; files that live processes are writing are locked, and kept
            abandoned_temp_files(svc.ctx, remove=True)
            # files stored before their pages' parts were (migration 0014) get them now
            fill_all_parts(svc.ctx)
        app.state.services = svc
        api.state.services = svc
        install_log_redaction()
        registry.register(ServiceCollector(svc))
        try:
            yield
        finally:
            if own:
                svc.close()

    # outermost first: the access log sees the original path (and masks a URL token)
    registry = CollectorRegistry()
    middleware: list[Middleware] = [
        Middleware(AccessLog, metrics=RequestMetrics(registry), log_requests=settings.access_log)
    ]
    # the simple API's fast path answers cached pages itself (with their Referrer-Policy);
    # it handles only /pypi/ paths, which UrlToken leaves alone
    middleware += [Middleware(pypi.SimpleFastPath), Middleware(NoReferrer), Middleware(UrlToken)]
    if settings.public_url:
        # absolute URLs name public_url, never the request's Host (after the fast path,
        # whose answers hold no absolute URL)
        middleware.append(Middleware(PublicOrigin, public_url=settings.public_url))
    app = Starlette(
        routes=[
            # the hot paths first: routes are tried in order, and every route tried costs a
            # regular-expression match on every request (27 UI routes cost repodata 13%)
            *pypi.routes,
            *conda.routes,
            *files.routes,
            *ops.routes,
            *ui_account.routes,  # the web UI: `/` and /ui/ (the simple index stays put)
            *ui_admin.routes,
            *ui_routes.routes,
            *conda_upload_apis.routes,  # before the API mount: one of them is under /api/v1
            *oidc.routes,  # trusted publishing: /_/oidc/... and /api/oidc/mint_token
            Mount(API_PREFIX, app=api),
        ],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            PackhouseError: handle_domain_error,
            HTTPException: handle_http_error,
            OSError: handle_os_error,  # no space left: 507
            Exception: handle_unexpected,
        },
    )
    app.state.metrics_registry = registry
    return app
