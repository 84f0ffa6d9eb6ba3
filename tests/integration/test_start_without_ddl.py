"""Starting on a current database runs no DDL: the start before migrations applied schema.sql
every time, and its table locks deadlocked the bookings running meanwhile."""

from __future__ import annotations

import argparse

from aiohttp.test_utils import TestClient, TestServer

from events.migrate import migrate
from service.app import create_app
from service.cli.audit import audit_command
from service.settings import Settings
from tests.integration.conftest import NewDatabase, OpenPool

# Every DDL command in the database, as it starts, into a table of its own. An event trigger
# needs a superuser, which the test servers (CI's and the embedded one) run as.
_LOG_DDL = """
CREATE TABLE ddl_log (tag text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ddl_log (tag) VALUES (tg_tag);
END
$$;
CREATE EVENT TRIGGER log_every_ddl ON ddl_command_start EXECUTE FUNCTION log_ddl();
"""


async def test_serve_starts_on_a_current_database_without_any_ddl(
    new_database: NewDatabase, open_pool: OpenPool
) -> None:
    """What the start before migrations did (schema.sql, under traffic) deadlocked bookings."""
    dsn = await new_database()
    pool = await open_pool(dsn)
    await migrate(pool)
    await pool.execute(_LOG_DDL)

    app = create_app(Settings(database_url=dsn, recovery_interval_seconds=0))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/ready")
        assert response.status == 200, await response.text()

    assert await pool.fetch("SELECT tag FROM ddl_log") == []
    # The trigger does see DDL: this test would catch a start that ran some.
    await pool.execute("CREATE TABLE IF NOT EXISTS events (position bigint)")
    assert [row["tag"] for row in await pool.fetch("SELECT tag FROM ddl_log")] == ["CREATE TABLE"]


async def test_audit_on_a_current_database_runs_no_ddl(
    new_database: NewDatabase, open_pool: OpenPool
) -> None:
    dsn = await new_database()
    pool = await open_pool(dsn)
    await migrate(pool)
    await pool.execute(_LOG_DDL)

    args = argparse.Namespace(audit_of="call", call_id="call_687", json=False)
    assert await audit_command(args, Settings(database_url=dsn)) == 1  # no such call

    assert await pool.fetch("SELECT tag FROM ddl_log") == []
