"""Builds the concrete objects from Settings. Only the app factory and the CLI call this."""

from __future__ import annotations

from dataclasses import dataclass

from packhouse.config import Settings
from packhouse.db.engine import Database
from packhouse.services.access import AccessService
from packhouse.services.catalog import Catalog
from packhouse.services.conda_proxied import ProxiedPages
from packhouse.services.conda_proxy import CondaProxy
from packhouse.services.conda_reads import CondaReader
from packhouse.services.conda_upstream_shards import ShardsProxy
from packhouse.services.context import Context
from packhouse.services.pypi_proxy import PypiProxy
from packhouse.services.pypi_reads import PypiReader
from packhouse.services.upstream_cache import UpstreamCache
from packhouse.storage.base import BlobStore


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
    db = Database(settings.sqlalchemy_url)
    if migrate:
        db.upgrade()
    return Context(settings=settings, db=db, blobs=build_blob_store(settings))


@dataclass
class Services:
    ctx: Context
    catalog: Catalog
    access: AccessService
    pypi: PypiReader
    conda: CondaReader
    upstreams: UpstreamCache

    @classmethod
    def of(cls, ctx: Context) -> Services:
        catalog = Catalog(ctx)
        upstreams = UpstreamCache(ctx)
        pypi = PypiReader(ctx, catalog, PypiProxy(upstreams))
        proxied = ProxiedPages(ctx, CondaProxy(upstreams), ShardsProxy(upstreams))
        conda = CondaReader(ctx, catalog, proxied)
        return cls(ctx, catalog, AccessService(ctx), pypi, conda, upstreams)

    def close(self) -> None:
        self.upstreams.close()
        self.ctx.db.dispose()
