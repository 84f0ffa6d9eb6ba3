"""The composition root: `create_app` builds and wires every dependency at call time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from events.database import apply_schema, create_pool, start_embedded
from events.store import EventStore
from projections import appointments
from service.booking_routes import add_booking_routes
from service.calcom.port import CalcomClient
from service.clock import Clock, SystemClock
from service.guards import ExistingAppointment, default_guards
from service.http_errors import json_errors
from service.keys import POOL, SETTINGS, STORE, WORKFLOW
from service.settings import Settings
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
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    clock = clock or SystemClock()

    async def database(app: web.Application) -> AsyncIterator[None]:
        dsn = await resolve_dsn(settings)
        pool = await create_pool(dsn, max_size=settings.pool_max_size)
        try:
            await apply_schema(pool)
            app[POOL] = pool
            app[STORE] = EventStore(pool)
            yield
        finally:
            await pool.close()

    async def calcom_client(app: web.Application) -> AsyncIterator[None]:
        from service.calcom.wiring import open_calcom

        async with open_calcom(settings, given=calcom) as client:
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
            )
            yield

    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(calcom_client)
    app.router.add_get("/health", health)
    add_booking_routes(app)
    return app


async def health(request: web.Request) -> web.Response:
    """The process is alive and serving HTTP."""
    return web.json_response({"status": "ok"})
