"""Operations: liveness, readiness, metrics."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from packhouse.web.deps import services
from packhouse.wiring import Services


class ServiceCollector(Collector):
    """Gauges read at scrape time: the journal serial and the page cache's size."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        ctx = self._services.ctx
        yield GaugeMetricFamily(
            "packhouse_journal_serial", "Newest journal serial", value=ctx.db.watcher.current()
        )
        yield GaugeMetricFamily(
            "packhouse_page_cache_bytes", "Bytes of rendered pages kept", value=ctx.pages.size
        )
        yield GaugeMetricFamily(
            "packhouse_page_cache_entries", "Rendered pages kept", value=len(ctx.pages)
        )
        stats = self._services.upstreams.stats
        counts = CounterMetricFamily(
            "packhouse_proxy_cache",
            "Proxy cache outcomes: index documents and files served from the cache (hit),"
            " fetched from the upstream (miss), served stale because the upstream failed,"
            " and upstream errors",
            labels=["kind", "outcome"],
        )
        for kind, outcome, value in (
            ("index", "hit", stats.hits),
            ("index", "miss", stats.misses),
            ("index", "stale", stats.stale),
            ("any", "upstream_error", stats.errors),
            ("file", "hit", stats.file_hits),
            ("file", "miss", stats.file_misses),
        ):
            counts.add_metric([kind, outcome], value)
        yield counts


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    svc = services(request)
    try:
        serial = await run_in_threadpool(svc.ctx.db.watcher.current)
    except Exception as exc:  # any failure to reach the database means "not ready"
        return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, 503)
    return JSONResponse({"status": "ok", "serial": serial})


async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET", "HEAD"]),
    Route("/readyz", readyz, methods=["GET", "HEAD"]),
    Route("/metrics", metrics, methods=["GET"]),
]
