"""`packhouse serve`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from packhouse.cli.common import ConfigOption, DataOption, console, fail, settings_from
from packhouse.cli.workers import (
    WORKER_ARGS,
    run_granian_workers,
    run_uvicorn_workers,
    worker_args,
)
from packhouse.errors import PackhouseError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from packhouse.config import Settings


def serve(
    data: DataOption = None,
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to bind. Default 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind. Default 8080")] = None,
    access_log: Annotated[
        bool | None, typer.Option(help="Log every request (secrets redacted).", show_default=False)
    ] = None,
    server: Annotated[
        str,
        typer.Option(
            help="HTTP server: granian (the default, fastest as measured in"
            " bench/pypi_simple.py) or uvicorn."
        ),
    ] = "granian",
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            help="Serve HTTPS: the PEM certificate (chain) file. Needs --tls-key; the key's"
            " password, if any, is the setting tls_key_password (PACKHOUSE_TLS_KEY_PASSWORD).",
            show_default=False,
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(help="The PEM private key of --tls-cert.", show_default=False),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Server processes on the one port (setting `workers`, default 1). They share"
            " the database and the blobs; use about one per core.",
            show_default=False,
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the database, e.g. postgresql+psycopg://host/db"
            " (default: SQLite in the data directory).",
            show_default=False,
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Where blobs are kept: local (the data directory, the default) or"
            " s3://BUCKET/PREFIX (endpoint and keys from the s3 settings).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the server.

    On an empty data directory this creates the admin user (password from
    PACKHOUSE_ADMIN_PASSWORD, else generated and printed once) and the private `main`
    repositories, then prints the URLs to use.

    Examples:

      packhouse serve

      packhouse serve --data /srv/packhouse --host 0.0.0.0 --port 8080

      packhouse serve --host 0.0.0.0 --port 8443 --tls-cert cert.pem --tls-key key.pem

      packhouse serve --workers 4 --database-url postgresql+psycopg://db/packhouse
        --storage s3://packages/blobs/
    """
    # the web application, its servers and the stores: imported here, not at start-up
    import uvicorn

    from packhouse.services.artifacts import abandoned_temp_files
    from packhouse.services.bootstrap import first_start
    from packhouse.web.app import create_app
    from packhouse.web.errors import cut_short_quietly
    from packhouse.wiring import Services, build_context

    if server not in ("granian", "uvicorn"):
        fail(f"--server must be granian or uvicorn, not {server!r}")
    overrides: dict[str, object] = {
        "host": host,
        "port": port,
        "access_log": access_log,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "workers": workers,
        "database_url": database_url,
        **_storage_overrides(storage),
    }
    settings = settings_from(data, config, **overrides)
    try:
        check_tls(settings)
    except PackhouseError as exc:
        fail(exc.message, 2)
    _check_port_free(settings.host, settings.port)
    try:
        ctx = build_context(settings)
        started = first_start(ctx)
    except PackhouseError as exc:
        fail(exc.message)
    # uploads cut short by a crash (kill -9, power loss); files in use by other live
    # processes on this data directory are locked, and kept
    cleared = abandoned_temp_files(ctx, remove=True)
    if cleared:
        console.print(f"removed {len(cleared)} temporary files left by an interrupted run")
    _print_welcome(
        settings,
        started.admin if started else None,
        started.generated_password if started else None,
    )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every upstream request at INFO; proxies log what matters themselves
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    if settings.workers > 1:
        # each worker builds its own stores after the fork; none are shared across it
        Services.of(ctx, lazy=True).close()
        os.environ[WORKER_ARGS] = worker_args(config, {"data": data, **overrides})
        if server == "granian":
            run_granian_workers(settings, _key_password(settings))
        else:
            run_uvicorn_workers(settings, _key_password(settings))
        return
    services = Services.of(ctx)
    app = create_app(settings, services)
    if server == "granian":
        _run_granian(cut_short_quietly(app), settings)
        services.close()
        return
    uvicorn.run(
        cut_short_quietly(app),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,  # the app logs requests itself, with secrets redacted
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        ssl_keyfile_password=_key_password(settings),
    )
    services.close()


def _check_port_free(host: str, port: int) -> None:
    """Refuse to start on an address another process listens on. granian binds with
    SO_REUSEPORT (so that its workers share the port), which would let a second server on
    the same port start silently and take a share of the connections to another database."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        fail(f"cannot listen on {host!r}: {exc.strerror}", 2)
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                fail(
                    f"port {port} on {host} is already in use (another packhouse serve?):"
                    " stop that process or choose another --port",
                )
            fail(f"cannot listen on {host}:{port}: {exc.strerror}", 2)


def _storage_overrides(storage: str | None) -> dict[str, object]:
    """The settings `--storage local` or `--storage s3://BUCKET/PREFIX` stands for."""
    if storage is None:
        return {}
    if storage == "local":
        return {"storage": "local"}
    if not storage.startswith("s3://"):
        fail(f"--storage must be local or s3://BUCKET/PREFIX, not {storage!r}", 2)
    bucket, _, prefix = storage.removeprefix("s3://").partition("/")
    if not bucket:
        fail(f"--storage {storage!r} names no bucket: use s3://BUCKET/PREFIX", 2)
    s3: dict[str, str] = {"bucket": bucket}
    if prefix:
        s3["prefix"] = prefix if prefix.endswith("/") else prefix + "/"
    return {"storage": "s3", "s3": s3}


def _run_granian(app: ASGIApp, settings: Settings) -> None:
    """Serve with granian embedded in this process: its Rust HTTP/1.1 and HTTP/2 stack
    feeds the ASGI app on this process's event loop (uvloop), so there is one process, as
    with uvicorn. SIGINT or SIGTERM stops accepting and lets requests in flight finish."""
    import asyncio
    import gc
    import signal

    import uvloop
    from granian.constants import HTTPModes, Interfaces, SSLProtocols
    from granian.log import LogLevels
    from granian.server.embed import Server

    async def main() -> None:
        # What is alive now (modules, settings, the app) lives as long as the process: keep
        # it out of the cyclic GC's full collections, which a big page's render triggers.
        gc.freeze()
        granian = Server(
            app,
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            http=HTTPModes.auto,
            backlog=1024,
            log_level=LogLevels(settings.log_level.lower()),
            log_access=False,  # the app logs requests itself, with secrets redacted
            ssl_cert=settings.tls_cert,
            ssl_key=settings.tls_key,
            ssl_key_password=_key_password(settings),
            ssl_protocol_min=SSLProtocols.tls13
            if settings.tls_min_version == "1.3"
            else SSLProtocols.tls12,
        )
        # granian logs "Embedded server is experimental!" as it starts: its embedded mode
        # (one process, the app on this loop) is newer than its own process manager. Packhouse
        # says what that means once, in its own words, instead.
        logging.getLogger("_granian").addFilter(_not_embedded_warning)
        console.print(
            "HTTP server: granian, embedded in this process (a mode granian still calls"
            " experimental; --server uvicorn is the alternative)",
            highlight=False,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, granian.stop)
        await granian.serve()

    uvloop.run(main())


def _not_embedded_warning(record: logging.LogRecord) -> bool:
    return record.getMessage() != "Embedded server is experimental!"


def check_tls(settings: Settings) -> None:
    """Refuse (InvalidInput) a half-given or unusable TLS setting before the server starts,
    naming the file and what is wrong with it: certificate and key both or neither, readable
    PEM files, and a key that belongs to the certificate."""
    import ssl

    from packhouse.errors import InvalidInput

    cert, key = settings.tls_cert, settings.tls_key
    if cert is None and key is None:
        return
    if cert is None or key is None:
        given, missing = ("--tls-cert", "--tls-key") if key is None else ("--tls-key", "--tls-cert")
        raise InvalidInput(f"{given} needs {missing} too (the certificate and its private key)")
    for what, path in (("certificate", cert), ("key", key)):
        if not path.is_file():
            raise InvalidInput(f"the TLS {what} file {path} does not exist or is not a file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, _key_password(settings))
    except ssl.SSLError as exc:
        raise InvalidInput(
            f"cannot use the TLS certificate {cert} with the key {key}: {exc.reason or exc}"
            " (both must be PEM, the key the certificate's own; an encrypted key needs"
            " tls_key_password)"
        ) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read the TLS files {cert} and {key}: {exc}") from None


def _key_password(settings: Settings) -> str | None:
    secret = settings.tls_key_password
    return None if secret is None else secret.get_secret_value()


def _print_welcome(settings: Settings, admin: str | None, password: str | None) -> None:
    base = settings.base_url
    hostport = base.split("://", 1)[1]
    scheme = base.split("://", 1)[0]
    console.print(f"[bold]Packhouse[/] serving data in {settings.data.absolute()}")
    if admin:
        console.print(f"Created the administrator [bold]{admin}[/]", highlight=False)
        if password:
            console.print(
                f"  password (shown once, store it now): [bold]{password}[/]", highlight=False
            )
        console.print("  and the private repositories pypi/main and conda/main.")
    user = admin or "USER"
    console.print(
        "\nUse it:\n"
        f"  twine upload --repository-url {base}/pypi/main/ -u {user} dist/*\n"
        f"  uv publish --publish-url {base}/pypi/main/ -u {user} dist/*\n"
        f"  pip install --index-url {scheme}://{user}:PASSWORD@{hostport}/pypi/main/simple/ NAME\n"
        f"  uv pip install --index-url {scheme}://{user}:PASSWORD@{hostport}/pypi/main/simple/"
        " NAME\n"
        f"  packhouse upload --url {base} --user {user} --repo main pkg-1.0-0.conda\n"
        f"  conda install -c {scheme}://{user}:PASSWORD@{hostport}/conda/main/ NAME"
        "  (or a token: .../t/<token>/conda/main/)\n"
        "A CI pipeline publishes with a token of a service account:\n"
        "  packhouse user add ci --service\n"
        "  packhouse repo grant pypi/main ci upload\n"
        "  packhouse token create --user ci --repo pypi/main --scope upload --name ci\n",
        highlight=False,
        soft_wrap=True,
    )
