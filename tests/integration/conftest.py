"""Integration fixtures beyond the run's shared database: empty databases of one test's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from tests.conftest import _with_database

NewDatabase = Callable[[], Awaitable[str]]


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
