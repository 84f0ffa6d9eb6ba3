"""The shared Cal.com budget: leased in batches from PostgreSQL, one per key for all processes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from service.booking.calcom_budget import WINDOW, SharedCalcomBudget, key_hash
from service.booking.clock import FakeClock
from service.calcom.rate_limit import Announcement, CalcomRateLimited
from service.cli.main import main
from service.settings import Settings
from tests.conftest import wait_until

KEY = "cal_live_budget_test_key"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))


async def used(db: asyncpg.Pool) -> int:
    n: int = await db.fetchval(
        "SELECT used FROM calcom_rate_limit WHERE key_hash = $1", key_hash(KEY)
    )
    return n


async def test_processes_share_one_budget_leased_in_batches(
    db: asyncpg.Pool, clock: FakeClock
) -> None:
    first = SharedCalcomBudget(db, api_key=KEY, limit=15, clock=clock, batch=10)
    second = SharedCalcomBudget(db, api_key=KEY, limit=15, clock=clock, batch=10)

    await first.take()
    assert await used(db) == 10  # one lease of a batch
    for _ in range(9):
        await first.take()
    assert await used(db) == 10  # the nine others spent local tokens: no round trip
    for _ in range(5):
        await second.take()
    with pytest.raises(CalcomRateLimited) as raised:
        await second.take()
    assert raised.value.status == 429 and raised.value.retry_after == 60
    with pytest.raises(CalcomRateLimited):
        await first.take()

    clock.advance(timedelta(seconds=60))  # a new window
    await second.take()
    assert await used(db) == 10


async def blocked_by(db: asyncpg.Pool, holder_pid: int) -> bool:
    """Whether a statement waits for a lock held by the backend `holder_pid`."""
    waiting: int = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
        holder_pid,
    )
    return waiting > 0


async def test_a_lease_whose_window_ends_while_it_is_in_flight_sends_its_request_in_the_next(
    db: asyncpg.Pool, clock: FakeClock
) -> None:
    # serve --workers 2 under load answered 500 here (bench/README.md, item 5): a lease sent in
    # its window's last moments came back after the window's end, and the token it granted was
    # thrown away as expired before this request could spend it.
    first = SharedCalcomBudget(db, api_key=KEY, limit=120, clock=clock, batch=10)
    second = SharedCalcomBudget(db, api_key=KEY, limit=120, clock=clock, batch=10)
    await first.take()  # the window: 09:00:00 to 09:01:00
    clock.advance(WINDOW - timedelta(milliseconds=1))
    async with db.acquire() as other, other.transaction():
        # Another process's lease holds the row; this one is sent before the window's end...
        await other.execute(
            "SELECT FROM calcom_rate_limit WHERE key_hash = $1 FOR UPDATE", key_hash(KEY)
        )
        lease = asyncio.create_task(second.take())
        await wait_until(lambda: blocked_by(db, other.get_server_pid()))
        clock.advance(timedelta(milliseconds=2))  # ... and answered after it
    await lease  # sent, not a 500
    # That grant (counted in the old window) lapsed; the request went out on a lease of the new
    # window, which counts it: no window sees more requests than its count says.
    assert await used(db) == 10
    await second.take()  # the new window's grant, spent without another lease
    assert await used(db) == 10


async def test_a_429_blocks_every_process_until_calcoms_reset(
    db: asyncpg.Pool, clock: FakeClock
) -> None:
    first = SharedCalcomBudget(db, api_key=KEY, limit=120, clock=clock)
    second = SharedCalcomBudget(db, api_key=KEY, limit=120, clock=clock)
    await first.take()
    await first.observe(Announcement(status=429, limit=120, remaining=0, reset_seconds=42))
    for budget in (first, second):
        with pytest.raises(CalcomRateLimited) as raised:
            await budget.take()
        assert raised.value.retry_after == 42
    clock.advance(timedelta(seconds=42))
    await second.take()


async def test_the_limit_follows_what_calcom_announces(db: asyncpg.Pool, clock: FakeClock) -> None:
    budget = SharedCalcomBudget(db, api_key=KEY, limit=120, clock=clock, batch=10)
    await budget.observe(Announcement(status=200, limit=3, remaining=2, reset_seconds=50))
    assert budget.limit == 3
    for _ in range(3):
        await budget.take()
    with pytest.raises(CalcomRateLimited):
        await budget.take()


@pytest.mark.parametrize(("text", "limit"), [("120", 120), ("90/min", 90), ("0", 0)])
def test_the_setting_is_requests_a_minute(
    monkeypatch: pytest.MonkeyPatch, text: str, limit: int
) -> None:
    monkeypatch.setenv("BOOKING_GUARD_CALCOM_RATE_LIMIT", text)
    assert Settings().calcom_rate_limit == limit


def test_a_bad_limit_stops_the_process_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOOKING_GUARD_CALCOM_RATE_LIMIT", "lots")
    assert main(["serve"]) == 2
    assert "BOOKING_GUARD_CALCOM_RATE_LIMIT" in capsys.readouterr().err
