"""Builds the concrete objects from Settings. Only the app factory and the CLI call this."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from packhouse.config import Settings
from packhouse.db.engine import Database
from packhouse.errors import InvalidInput, Unavailable
from packhouse.services.access import AccessService
from packhouse.services.catalog import Catalog
from packhouse.services.context import Context
from packhouse.storage.base import BlobStore

if TYPE_CHECKING:
    from packhouse.services.conda_reads import CondaReader
    from packhouse.services.oidc import OidcService
    from packhouse.services.pypi_reads import PypiReader
    from packhouse.services.upstream_cache import UpstreamCache


def build_blob_store(settings: Settings) -> BlobStore:
    if settings.storage == "s3":
        from packhouse.storage.s3 import S3BlobStore

        store: BlobStore = S3BlobStore(settings.s3, settings.data / "tmp")
        return store
    from packhouse.storage.local import LocalBlobStore

    return LocalBlobStore(settings.data / "blobs")


def build_context(settings: Settings, *, migrate: bool = True) -> Context:
    settings.data.mkdir(parents=True, exist_ok=True)
    (settings.data / "tmp").mkdir(exist_ok=True)
    return Context(
        settings=settings,
        db=open_database(settings, migrate=migrate),
        blobs=build_blob_store(settings),
    )


def open_database(settings: Settings, *, migrate: bool) -> Database:
    """The database of `settings`, migrated to the head when `migrate`; a URL that names no
    usable database, or a database that cannot be reached, is one clear error (the URL's
    password left out), not a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    url = settings.sqlalchemy_url
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise InvalidInput(
            "database_url is not a database URL such as postgresql+psycopg://user@host/db"
        ) from None
    try:
        db = Database(url, settings.db_busy_timeout)
        if migrate:
            db.upgrade()
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise InvalidInput(
            f"database_url {shown} cannot be used ({exc}): Packhouse runs on SQLite or on"
            " PostgreSQL through psycopg (postgresql+psycopg://user@host/db)"
        ) from None
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise Unavailable(f"cannot reach the database {shown}: {reason}") from None
    return db


class Services:
    """The services the web layer and the CLI use. The readers and the upstream clients
    (httpx, the proxies, the page renderers) are built on first use, so an admin command
    such as `packhouse user list` does not import them; the server builds them all at
    start-up (`lazy=False`), before any request thread could race to."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.catalog = Catalog(ctx)
        self.access = AccessService(ctx)

    @classmethod
    def of(cls, ctx: Context, *, lazy: bool = False) -> Services:
        built = cls(ctx)
        if not lazy:
            _ = built.pypi, built.conda, built.oidc
        return built

    @cached_property
    def upstreams(self) -> UpstreamCache:
        from packhouse.services.upstream_cache import UpstreamCache

        return UpstreamCache(self.ctx)

    @cached_property
    def pypi(self) -> PypiReader:
        from packhouse.services.pypi_proxy import PypiProxy
        from packhouse.services.pypi_reads import PypiReader

        return PypiReader(self.ctx, self.catalog, PypiProxy(self.upstreams))

    @cached_property
    def conda(self) -> CondaReader:
        from packhouse.services.conda_proxied import ProxiedPages
        from packhouse.services.conda_proxy import CondaProxy
        from packhouse.services.conda_reads import CondaReader
        from packhouse.services.conda_upstream_shards import ShardsProxy

        proxied = ProxiedPages(self.ctx, CondaProxy(self.upstreams), ShardsProxy(self.upstreams))
        return CondaReader(self.ctx, self.catalog, proxied)

    @cached_property
    def oidc(self) -> OidcService:
        from packhouse.services.oidc import OidcService

        return OidcService(self.ctx, self.catalog, self.upstreams.client)

    def close(self) -> None:
        if "upstreams" in self.__dict__:
            self.upstreams.close()
        self.ctx.db.dispose()
