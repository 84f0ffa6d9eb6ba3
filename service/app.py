"""The composition root: `create_app` builds and wires every dependency at call time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from events.database import apply_schema, create_pool, start_embedded
from events.store import EventStore
from service.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
STORE = web.AppKey("store", EventStore)


async def resolve_dsn(settings: Settings) -> str:
    """DATABASE_URL when set, otherwise the embedded server (started off the event loop)."""
    if settings.database_url:
        return settings.database_url
    return await asyncio.to_thread(start_embedded, settings.data_dir)


def create_app(settings: Settings) -> web.Application:
    """Build the service: the database pool and event store, the routes."""
    app = web.Application()
    app[SETTINGS] = settings

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

    app.cleanup_ctx.append(database)
    app.router.add_get("/health", health)
    return app


async def health(request: web.Request) -> web.Response:
    """The process is alive and serving HTTP."""
    return web.json_response({"status": "ok"})
