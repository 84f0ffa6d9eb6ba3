"""The ledger's counts for /metrics: exact at every look, even around a late commit."""

from __future__ import annotations

import asyncpg

from events.models import Event, NewEvent, register
from events.store import EventStore, ExpectedVersion
from service.ops.ledger_counts import LedgerCounts


@register
class LedgerTicked(Event):
    type_name = "TestLedgerTicked"

    n: int


def tick(n: int) -> list[NewEvent]:
    return [NewEvent(LedgerTicked(n=n))]


async def counted(counts: LedgerCounts, pool: asyncpg.Pool) -> int:
    await counts.refresh(pool)
    total = counts.total()
    assert total is not None
    return total.events["TestLedgerTicked"]


async def test_a_late_commit_is_counted_once_and_nothing_twice(db: asyncpg.Pool) -> None:
    store = EventStore(db)
    counts = LedgerCounts()
    assert counts.total() is None  # nothing exported before the first count
    await store.append("s-1", tick(1), expected_version=ExpectedVersion.NO_STREAM)
    assert await counted(counts, db) == 1

    async with db.acquire() as slow, slow.transaction():
        # Takes its transaction id now, commits after later appends: the horizon stays here.
        await store.append("s-slow", tick(2), expected_version=0, connection=slow)
        await store.append("s-2", tick(3), expected_version=0)
        await store.append("s-3", tick(4), expected_version=0)
        assert await counted(counts, db) == 3  # the slow one is not committed yet
        assert await counted(counts, db) == 3
    assert await counted(counts, db) == 4
    await store.append("s-4", tick(5), expected_version=0)
    assert await counted(counts, db) == 5
    assert await counted(counts, db) == 5
