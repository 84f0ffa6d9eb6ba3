"""bench/log_dataset.py: the log is the same whether one connection inserts its chunks or several.

The replay and audit benchmarks and bench/scale.py share this generator; their figures are only
comparable if a given size always makes the same log. Positions are given by the generator, not
by the identity, so that chunks can go in on several connections at once.
"""

from __future__ import annotations

import asyncpg
import pytest

from bench import log_dataset
from events.database import create_pool
from events.migrate import migrate
from tests.integration.conftest import NewDatabase

# 1,000 transactions: the loader always keeps that many ids below the present free for them, so
# each transaction gets an id of its own and their order is the log's, whatever the server.
EVENTS = 1_500
# Everything but the random event id; the transaction ids as their order (their values depend
# on the server's current id when the load starts).
_ROWS = """
SELECT position, dense_rank() OVER (ORDER BY transaction_id) AS transaction, stream_id, version,
       type, schema_version, data, metadata, recorded_at
  FROM events ORDER BY position
"""


async def _loaded(new_database: NewDatabase, connections: int) -> list[asyncpg.Record]:
    dsn = await new_database()
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        await migrate(pool)
    finally:
        await pool.close()
    await log_dataset.load(dsn, EVENTS, lambda _: None, connections=connections)
    conn = await asyncpg.connect(dsn)
    try:
        # The identity goes on after the log, as if it had handed out the positions.
        after = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('events', 'position'))")
        assert after == EVENTS + 1
        return await conn.fetch(_ROWS)
    finally:
        await conn.close()


async def test_several_connections_make_the_same_log(
    new_database: NewDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_dataset, "CHUNK", 50)  # ten chunks to share out
    alone = await _loaded(new_database, connections=1)
    shared = await _loaded(new_database, connections=3)
    assert len(alone) == EVENTS
    assert [r["position"] for r in alone] == list(range(1, EVENTS + 1))
    assert [tuple(r) for r in shared] == [tuple(r) for r in alone]
