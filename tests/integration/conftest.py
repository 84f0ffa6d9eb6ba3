"""Integration fixtures beyond the run's shared database: empty databases of one test's own,
and pools on them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from events.database import create_pool
from tests.conftest import _with_database

NewDatabase = Callable[[], Awaitable[str]]
OpenPool = Callable[..., Awaitable[asyncpg.Pool]]


@pytest.fixture
async def new_database(server_dsn: str) -> AsyncIterator[NewDatabase]:
    """Creates empty databases (no schema at all) on the test server; all dropped afterwards."""
    created: list[str] = []

    async def create() -> str:
        name = f"bg_scratch_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        created.append(name)
        return _with_database(server_dsn, name)

    yield create
    admin = await asyncpg.connect(server_dsn)
    try:
        for name in created:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def open_pool() -> AsyncIterator[OpenPool]:
    """Opens pools on scratch databases; all closed at the end of the test."""
    opened: list[asyncpg.Pool] = []

    async def open_on(dsn: str, max_size: int = 4) -> asyncpg.Pool:
        pool = await create_pool(dsn, min_size=1, max_size=max_size)
        opened.append(pool)
        return pool

    yield open_on
    for pool in opened:
        await pool.close()
