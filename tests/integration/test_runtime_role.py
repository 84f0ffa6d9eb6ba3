"""`serve` with BOOKING_GUARD_AUTO_MIGRATE=false runs as a PostgreSQL role that may read and
write the tables and nothing more: no CREATE anywhere, so no DDL can run, by mistake or by
design. The grants are those README's "Upgrades and migrations" lists."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.migrate import migrate
from service.app import create_app
from service.booking.clock import FakeClock
from service.calcom.client import HttpCalcomClient
from service.calcom.simulator.server import CalcomSimulator
from service.calcom.wiring import serve_simulator
from service.settings import Settings
from tests.e2e.conftest import INCIDENT_MORNING, attempt_body
from tests.integration.conftest import NewDatabase, OpenPool

PASSWORD = "runtime-role-password"

# Exactly what README lists, after taking away what PUBLIC gets by default (CONNECT and TEMP on
# the database, CREATE on schema public before PostgreSQL 15, EXECUTE on functions), so that the
# role holds these grants and no others.
_GRANTS = """
REVOKE ALL ON DATABASE {database} FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE {database} TO {role};
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role};
"""


def _as_role(dsn: str, role: str) -> str:
    scheme, _, rest = dsn.partition("://")
    _, _, host_and_rest = rest.rpartition("@")
    return f"{scheme}://{role}:{PASSWORD}@{host_and_rest}"


@pytest.fixture
async def runtime_dsn(
    new_database: NewDatabase, open_pool: OpenPool, server_dsn: str
) -> AsyncIterator[str]:
    """A migrated database and a DSN to it as a role with only the runtime grants."""
    dsn = await new_database()
    owner = await open_pool(dsn)
    await migrate(owner)
    role = f"bg_runtime_{uuid.uuid4().hex[:10]}"
    database = await owner.fetchval("SELECT current_database()")
    # The test servers (CI's and the embedded one) run as a superuser, who may create roles.
    # Role names are the server's, not the database's: a name of this test's own.
    await owner.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    try:
        await owner.execute(_GRANTS.format(database=f'"{database}"', role=role))
        yield _as_role(dsn, role)
    finally:
        # The database goes with the fixture; its grants must go first, or the role cannot.
        await owner.execute(f"DROP OWNED BY {role}")
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f"DROP ROLE {role}")
        finally:
            await admin.close()


async def test_the_runtime_role_cannot_run_ddl(runtime_dsn: str) -> None:
    conn = await asyncpg.connect(runtime_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE smuggled (id integer)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("ALTER TABLE appointments ADD COLUMN note text")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TEMPORARY TABLE scratch (id integer)")
    finally:
        await conn.close()


async def test_serve_without_auto_migrate_books_as_the_runtime_role(runtime_dsn: str) -> None:
    clock = FakeClock(INCIDENT_MORNING)
    simulator = CalcomSimulator(now=clock.now)
    settings = Settings(database_url=runtime_dsn, auto_migrate=False, recovery_interval_seconds=0)
    async with (
        serve_simulator(simulator) as base_url,
        HttpCalcomClient(api_key="cal_test", base_url=base_url) as calcom,
    ):
        app = create_app(settings, calcom=calcom, clock=clock)
        async with TestClient(TestServer(app)) as client:
            response = await client.post("/v1/booking-attempts", json=attempt_body())
            answer = await response.json()
            assert response.status == 201, answer
            assert answer["status"] == "confirmed"
            found = await client.get(f"/v1/appointments/{answer['appointment']['appointment_id']}")
            assert found.status == 200
            ready = await client.get("/ready")
            assert ready.status == 200, await ready.text()
