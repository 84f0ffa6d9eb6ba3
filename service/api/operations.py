"""The operator's routes: `GET /health` (alive), `GET /ready` (fit for traffic), `GET /metrics`."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from service.api.keys import CLOCK, METRICS, POOL, SETTINGS
from service.ops.database_status import ReadyLimits, database_status, problems
from service.settings import Settings

READY_RETRY_AFTER_SECONDS = 5


def ready_limits(settings: Settings) -> ReadyLimits:
    """The readiness thresholds of these settings."""
    return ReadyLimits(
        max_projection_lag_seconds=settings.ready_max_projection_lag_seconds,
        max_transaction_seconds=settings.ready_max_transaction_seconds,
    )


def _stale_before(app: web.Application) -> datetime:
    return app[CLOCK].now() - timedelta(seconds=app[SETTINGS].recovery_grace_seconds)


async def health(request: web.Request) -> web.Response:
    """The process is alive and serving HTTP (no dependency is asked)."""
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """200 when PostgreSQL answers, the schema is applied and the projectors keep up; else 503
    with the reasons."""
    settings = request.app[SETTINGS]
    status = await database_status(request.app[POOL], stale_before=_stale_before(request.app))
    reasons = problems(status, ready_limits(settings))
    body = {
        "status": "not_ready" if reasons else "ready",
        "reasons": reasons,
        "checks": status.to_json(),
    }
    if reasons:
        headers = {"Retry-After": str(READY_RETRY_AFTER_SECONDS)}
        return web.json_response(body, status=503, headers=headers)
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus exposition: this process's instruments and the ledger's global totals."""
    settings = request.app[SETTINGS]
    registry = request.app[METRICS]
    await registry.ledger.refresh(
        request.app[POOL], stale_before=_stale_before(request.app), limits=ready_limits(settings)
    )
    return web.Response(body=registry.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_operations_routes(app: web.Application) -> None:
    """Register /health, /ready and /metrics."""
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
