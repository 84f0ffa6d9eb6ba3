"""The composition root: `create_app` builds and wires every dependency at call time.

Every lifetime lives here as one `cleanup_ctx` generator (STYLE.md 21): the database, the
projectors, the Cal.com client and workflow, background attempts and the recovery loop. The
modules that define those objects know nothing of aiohttp's app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
from aiohttp import web

from events.database import create_pool, start_embedded
from events.migrate import migrate, require_current
from events.store import EventStore
from projections import catalog
from projections.projectors import run_projectors
from service.api.audit import add_audit_routes
from service.api.auth import auth_middlewares
from service.api.bookings import add_booking_routes
from service.api.errors import json_errors
from service.api.keys import (
    BACKGROUND_ATTEMPTS,
    CALCOM_CHANGES,
    CLOCK,
    DSN,
    METRICS,
    POOL,
    PROJECTORS,
    RECONCILER,
    RECOVERY,
    RETELL_AGENTS,
    SETTINGS,
    SLOT_FINDER,
    STORE,
    WORKFLOW,
)
from service.api.openapi.document import add_openapi_route
from service.api.operations import add_operations_routes
from service.api.retell_agents import RetellAgents
from service.api.slots import add_slot_routes
from service.api.telemetry import REQUESTS_IN_FLIGHT, RequestsInFlight, telemetry
from service.api.webhooks_calcom import add_calcom_routes
from service.api.webhooks_retell import add_retell_routes
from service.booking.alternatives import SlotFinder
from service.booking.appointment_lookup import PoolAppointmentLookup
from service.booking.background import BackgroundAttempts
from service.booking.calcom_budget import SharedCalcomBudget
from service.booking.calcom_changes import CalcomChanges
from service.booking.clock import Clock, SystemClock
from service.booking.event_kinds import EventTypeCatalog
from service.booking.guards import default_guards
from service.booking.models import AttemptOutcome
from service.booking.orphans import Orphans
from service.booking.reconciler import Reconciler
from service.booking.recovery import Parking, RecoveryLoop
from service.booking.workflow import BookingWorkflow
from service.calcom.account import AccountSource
from service.calcom.event_types import EventTypeSource
from service.calcom.port import CalcomClient, CalcomError
from service.calcom.slots import SlotSource
from service.calcom.wiring import open_calcom
from service.ops.metrics import Metrics
from service.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# How long `serve` waits at start to learn whose Cal.com key it holds before it goes on without.
WHOAMI_TIMEOUT_SECONDS = 5.0


async def resolve_dsn(settings: Settings, *, create: bool = True) -> str:
    """DATABASE_URL when set, otherwise the embedded server (started off the event loop);
    `create=False`: NoEmbeddedDatabase rather than a new, empty cluster."""
    if settings.database_url:
        return settings.database_url
    return await asyncio.to_thread(start_embedded, settings.data_dir, create=create)


@asynccontextmanager
async def command_pool(settings: Settings, *, create: bool = False) -> AsyncIterator[asyncpg.Pool]:
    """A small pool for a command other than `serve`, whatever the schema's version.

    Only `db migrate` passes `create=True`: the others read, and an empty cluster made for them
    would only hide that BOOKING_GUARD_DATA_DIR points somewhere else than the service's.
    """
    pool = await create_pool(await resolve_dsn(settings, create=create), min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def command_database(settings: Settings) -> AsyncIterator[tuple[asyncpg.Pool, EventStore]]:
    """The database of `audit`, `replay`, `projections`: a small pool and the store over it.

    These commands never change the schema: on a database behind they raise SchemaBehind
    (the person running them is told to run `booking-guard db migrate`).
    """
    async with command_pool(settings) as pool:
        await require_current(pool)
        yield pool, EventStore(pool)


@asynccontextmanager
async def command_reconciler(
    settings: Settings, *, calcom: CalcomClient | None = None
) -> AsyncIterator[tuple[Reconciler, CalcomClient]]:
    """`reconcile`'s parts: the database, the Cal.com client and a reconciler over both."""
    api_key = settings.calcom_api_key
    async with (
        command_database(settings) as (pool, store),
        open_calcom(
            api_key=api_key.get_secret_value() if api_key is not None else None,
            base_url=settings.calcom_base_url,
            given=calcom,
        ) as client,
    ):
        clock = SystemClock()
        orphans = Orphans(
            pool=pool, store=store, calcom=client, clock=clock, policy=settings.orphan_policy
        )
        yield (
            Reconciler(
                pool=pool,
                store=store,
                calcom=client,
                clock=clock,
                orphans=orphans,
                orphan_grace=timedelta(seconds=settings.orphan_grace_seconds),
            ),
            client,
        )


async def prepare_schema(pool: asyncpg.Pool, *, auto_migrate: bool) -> None:
    """`serve`'s start: apply pending migrations, or refuse a database behind (SchemaBehind).

    On a current database either way costs one SELECT: no lock and no DDL, which under traffic
    would queue behind (and deadlock with) live bookings.
    """
    if auto_migrate:
        await migrate(pool)
    else:
        await require_current(pool)


async def log_calcom_account(client: CalcomClient, settings: Settings) -> None:
    """One line at start: which Cal.com the service books in, and as whom (`GET /v2/me`).

    A wrong key or base URL otherwise shows only when the first caller's booking fails. A
    failure here is a WARNING and the start goes on: Cal.com may be down for a minute, and
    the bookings' own errors and alerts say the rest.
    """
    where = (
        "the built-in Cal.com simulator (CALCOM_API_KEY is unset), not Cal.com"
        if settings.calcom_api_key is None
        else f"Cal.com at {settings.calcom_base_url}"
    )
    if not isinstance(client, AccountSource):
        log.info("booking in %s", where)
        return
    try:
        async with asyncio.timeout(WHOAMI_TIMEOUT_SECONDS):
            account = await client.get_me()
    except (CalcomError, TimeoutError) as e:
        log.warning(
            "booking in %s, but GET /v2/me failed (%s): cannot tell whose API key this is; "
            "run `booking-guard check`",
            where,
            e if str(e) else type(e).__name__,
        )
        return
    log.info("booking in %s as %s", where, account.describe())


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
    app[REQUESTS_IN_FLIGHT] = RequestsInFlight()
    app[RETELL_AGENTS] = RetellAgents(settings.retell_agents)
    if settings.retell_api_key is not None and not settings.retell_agents:
        log.warning(
            "BOOKING_GUARD_RETELL_AGENTS is not set: Retell functions book the event_type_id the "
            "LLM passes; configure each agent's services to take it from the agent instead"
        )

    def observe_outcome(outcome: AttemptOutcome) -> None:
        metrics.observe_outcome(outcome.status, outcome.guard, outcome.reason)

    async def database(app: web.Application) -> AsyncIterator[None]:
        dsn = await resolve_dsn(settings)
        # The request path holds no session state, so its pool skips asyncpg's reset query;
        # the projectors (LISTEN, session advisory locks) get a small pool of their own.
        pool = await create_pool(dsn, max_size=settings.pool_max_size, reset_sessions=False)
        try:
            await prepare_schema(pool, auto_migrate=settings.auto_migrate)
            app[POOL] = pool
            app[DSN] = dsn
            store = app[STORE] = EventStore(pool)
            yield
            await store.close()
        finally:
            await pool.close()

    async def calcom_client(app: web.Application) -> AsyncIterator[None]:
        api_key = settings.calcom_api_key
        key = api_key.get_secret_value() if api_key is not None else None
        budget = (
            SharedCalcomBudget(
                app[POOL], api_key=key, limit=settings.calcom_rate_limit, clock=clock
            )
            if key is not None and settings.calcom_rate_limit > 0
            else None
        )
        async with open_calcom(
            api_key=key,
            base_url=settings.calcom_base_url,
            given=calcom,
            on_request=metrics.observe_calcom,
            budget=budget,
            # Processes of one data directory share one simulator, so they share its calendar.
            simulator_dir=settings.data_dir,
        ) as client:
            if calcom is None:
                await log_calcom_account(client, settings)
            lookup = PoolAppointmentLookup(app[POOL])
            app[SLOT_FINDER] = SlotFinder(client if isinstance(client, SlotSource) else None, clock)
            guards = (
                default_guards(
                    max_age=timedelta(seconds=settings.freshness_max_age_seconds), lookup=lookup
                )
                if guards_enabled
                else []
            )
            app[CALCOM_CHANGES] = CalcomChanges(pool=app[POOL], store=app[STORE], calcom=client)
            orphan_grace = timedelta(seconds=settings.orphan_grace_seconds)
            orphans = Orphans(
                pool=app[POOL],
                store=app[STORE],
                calcom=client,
                clock=clock,
                policy=settings.orphan_policy,
                observer=metrics.observe_orphan,
            )
            app[WORKFLOW] = BookingWorkflow(
                pool=app[POOL],
                store=app[STORE],
                calcom=client,
                clock=clock,
                guards=guards,
                fallback_email=settings.fallback_email,
                in_flight_grace=timedelta(seconds=settings.recovery_grace_seconds),
                observer=observe_outcome,
                event_types=EventTypeCatalog(client)
                if isinstance(client, EventTypeSource)
                else None,
                orphans=orphans,
                orphan_grace=orphan_grace,
            )
            app[RECONCILER] = Reconciler(
                pool=app[POOL],
                store=app[STORE],
                calcom=client,
                clock=clock,
                orphans=orphans,
                orphan_grace=orphan_grace,
                observer=metrics.observe_drift,
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

    async def background_attempts(app: web.Application) -> AsyncIterator[None]:
        # Its tasks end before the pool and the Cal.com client close (cleanup runs in reverse).
        tracker = app[BACKGROUND_ATTEMPTS] = BackgroundAttempts()
        yield
        await tracker.close()

    async def recovery_loop(app: web.Application) -> AsyncIterator[None]:
        interval = settings.recovery_interval_seconds
        if interval <= 0:
            log.warning("BOOKING_GUARD_RECOVERY_INTERVAL_SECONDS is 0: no recovery loop here")
            yield
            return
        loop = app[RECOVERY] = RecoveryLoop(
            app[WORKFLOW],
            app[POOL],
            clock,
            interval=interval,
            metrics=metrics,
            reconciler=app[RECONCILER],
            reconcile_every=settings.reconcile_interval_seconds,
            parking=Parking(
                store=app[STORE],
                max_tries=settings.recovery_max_tries,
                grace=timedelta(seconds=settings.recovery_grace_seconds),
            ),
        )
        async with loop.running():
            yield

    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(projectors)
    app.cleanup_ctx.append(calcom_client)
    app.cleanup_ctx.append(background_attempts)
    app.cleanup_ctx.append(recovery_loop)
    add_operations_routes(app)
    add_booking_routes(app)
    add_slot_routes(app)
    add_audit_routes(app)
    add_retell_routes(app)
    add_calcom_routes(app)
    add_openapi_route(app)
    return app
