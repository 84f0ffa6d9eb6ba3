"""The composition root: `create_app` builds and wires every dependency at call time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from events.database import apply_schema, create_pool, start_embedded
from events.store import EventStore
from projections import appointments, catalog
from projections.projectors import run_projectors
from service.async_attempts import background_attempts
from service.audit_routes import add_audit_routes
from service.auth import auth_middlewares
from service.booking_routes import add_booking_routes
from service.calcom.port import CalcomClient
from service.clock import Clock, SystemClock
from service.guards import ExistingAppointment, default_guards
from service.health import add_operations_routes
from service.http_errors import json_errors
from service.http_telemetry import telemetry
from service.keys import CLOCK, DSN, POOL, PROJECTORS, SETTINGS, STORE, WORKFLOW
from service.metrics import METRICS, Metrics
from service.openapi import add_openapi_route
from service.recovery import recovery_loop
from service.settings import Settings
from service.webhooks_calcom import add_calcom_routes
from service.webhooks_retell import add_retell_routes
from service.workflow import BookingWorkflow

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


async def resolve_dsn(settings: Settings) -> str:
    """DATABASE_URL when set, otherwise the embedded server (started off the event loop)."""
    if settings.database_url:
        return settings.database_url
    return await asyncio.to_thread(start_embedded, settings.data_dir)


class PoolAppointmentLookup:
    """The existing-appointment guard's port, over the appointments table."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def by_booking_uid(self, booking_uid: str) -> ExistingAppointment | None:
        row = await appointments.by_booking_uid(self._app[POOL], booking_uid)
        if row is None:
            return None
        return ExistingAppointment(
            appointment_id=row["appointment_id"],
            call_id=row["call_id"],
            attempt_id=row["attempt_id"],
            booking_uid=row["booking_uid"],
        )


def create_app(
    settings: Settings,
    *,
    calcom: CalcomClient | None = None,
    clock: Clock | None = None,
    guards_enabled: bool = True,
) -> web.Application:
    """Build the service. Tests pass their own Cal.com (the simulator) and clock."""
    app = web.Application(
        # telemetry outermost: it counts and logs the status the client finally gets.
        middlewares=[telemetry, json_errors, *auth_middlewares(settings.api_tokens)],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    clock = clock or SystemClock()
    app[CLOCK] = clock
    metrics = app[METRICS] = Metrics()

    async def database(app: web.Application) -> AsyncIterator[None]:
        dsn = await resolve_dsn(settings)
        # The request path holds no session state, so its pool skips asyncpg's reset query;
        # the projectors (LISTEN, session advisory locks) get a small pool of their own.
        pool = await create_pool(dsn, max_size=settings.pool_max_size, reset_sessions=False)
        try:
            await apply_schema(pool)
            app[POOL] = pool
            app[DSN] = dsn
            store = app[STORE] = EventStore(pool)
            yield
            await store.close()
        finally:
            await pool.close()

    async def calcom_client(app: web.Application) -> AsyncIterator[None]:
        from service.calcom.wiring import open_calcom

        async with open_calcom(settings, given=calcom, on_request=metrics.observe_calcom) as client:
            lookup = PoolAppointmentLookup(app)
            guards = (
                default_guards(
                    max_age=timedelta(seconds=settings.freshness_max_age_seconds), lookup=lookup
                )
                if guards_enabled
                else []
            )
            app[WORKFLOW] = BookingWorkflow(
                pool=app[POOL],
                store=app[STORE],
                calcom=client,
                clock=clock,
                guards=guards,
                fallback_email=settings.fallback_email,
                in_flight_grace=timedelta(seconds=settings.recovery_grace_seconds),
                observer=metrics.observe_outcome,
            )
            yield

    async def projectors(app: web.Application) -> AsyncIterator[None]:
        # Asynchronous read models only; appointments is written inline by the workflow.
        pool = await create_pool(app[DSN], min_size=1, max_size=3)
        try:
            async with run_projectors(pool, app[STORE], catalog.asynchronous()) as running:
                app[PROJECTORS] = running
                yield
        finally:
            await pool.close()

    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(projectors)
    app.cleanup_ctx.append(calcom_client)
    # After the pool and Cal.com client, so its tasks end before either closes.
    app.cleanup_ctx.append(background_attempts)
    app.cleanup_ctx.append(recovery_loop)
    add_operations_routes(app)
    add_booking_routes(app)
    add_audit_routes(app)
    add_retell_routes(app)
    add_calcom_routes(app)
    add_openapi_route(app)
    return app
