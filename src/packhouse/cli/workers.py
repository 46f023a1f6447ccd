"""`packhouse serve --workers N`: N server processes on one port.

The parent process prepares the data (migrations, the first start, temporary files left by
a crash), then lets the HTTP server fork the workers, which share its listening socket; each
worker builds its own Settings the way the parent did (the same config file, data directory,
options and environment: nothing secret passes between them) and its own stores and caches,
in its app's lifespan. Workers agree through the database: every page cache is keyed by the
journal serial, so an upload through one worker is served by every other on its next request.
A worker that dies is started again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from packhouse.config import Settings

# What a worker needs to build the parent's Settings again: the config file and the
# command line's overrides (JSON). Secrets stay in the environment or the config file.
WORKER_ARGS = "PACKHOUSE_WORKER_ARGS"
APP_FACTORY = "packhouse.cli.workers:worker_app"


def worker_args(config: Path | None, overrides: dict[str, Any]) -> str:
    given = {k: str(v) if isinstance(v, Path) else v for k, v in overrides.items() if v is not None}
    return json.dumps({"config": str(config) if config else None, "overrides": given})


def worker_app() -> ASGIApp:
    """The ASGI app of one worker (granian and uvicorn call this after the fork)."""
    from packhouse.config import load_settings
    from packhouse.web.app import create_app
    from packhouse.web.errors import cut_short_quietly

    args = json.loads(os.environ[WORKER_ARGS])
    config = Path(args["config"]) if args["config"] else None
    settings = load_settings(config, **args["overrides"])
    # the stores are built in the app's lifespan, in this process
    return cut_short_quietly(create_app(settings))


def run_granian_workers(settings: Settings, key_password: str | None) -> None:
    """Serve with granian's process manager: it binds the socket, forks the workers and
    starts a worker again when one dies; SIGINT or SIGTERM stops them all gracefully."""
    from granian.constants import HTTPModes, Interfaces, SSLProtocols
    from granian.log import LogLevels
    from granian.server.mp import MPServer

    server = MPServer(
        APP_FACTORY,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=settings.workers,
        http=HTTPModes.auto,
        backlog=1024,
        log_level=LogLevels(settings.log_level.lower()),
        log_access=False,  # the app logs requests itself, with secrets redacted
        ssl_cert=settings.tls_cert,
        ssl_key=settings.tls_key,
        ssl_key_password=key_password,
        ssl_protocol_min=SSLProtocols.tls13
        if settings.tls_min_version == "1.3"
        else SSLProtocols.tls12,
        respawn_failed_workers=True,
        workers_kill_timeout=15,
    )
    server.serve()


def run_uvicorn_workers(settings: Settings, key_password: str | None) -> None:
    import uvicorn

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        ssl_keyfile_password=key_password,
    )
