"""What a booking attempt over HTTP could cost on this machine: a ladder of stripped-down apps.

Each serves `POST /v1/booking-attempts` from this process, under the same load as the service:

1. `bare aiohttp`: read the JSON body, answer 201;
2. `+ one Cal.com call`: and create the booking through the service's HttpCalcomClient;
3. `+ the ledger's writes, a transaction per phase`: and write what booking-guard writes for a
   confirmation (the idempotency key, BookingRequested through bg_append_events, the guard's
   appointment lookup, then the appointment, CalcomBookingReceived + BookingConfirmed and the
   key's answer) with statements in transactions, as booking-guard did before
   service/booking/phase_writes.py, on a pool built like its own (no reset query): 11 round trips;
4. `+ the same writes, a statement per phase`: the same rows in 3 statements (claim and intent
   in one, the lookup, the outcome in one, each a data-modifying CTE around bg_append_events),
   as booking-guard did them until issue 16;
5. `+ the same writes in two statements`: the same without the lookup (the unique index on
   booking_uid refuses a taken booking in the outcome statement), the two round trips
   booking-guard makes now (issue 16 item 2's rung).

No pydantic models, no logging, no metrics in any of them: the distance from rung 3 to the
service is what booking-guard's own Python costs; from 3 to 4, what its round trips cost.

`python -m bench.http_ceilings --rung NAME --port P` (the database in DATABASE_URL, Cal.com in
CALCOM_BASE_URL) serves one rung in a process of its own on a port it shares with SO_REUSEPORT,
as `booking-guard serve --workers N` does, until SIGTERM: N such processes are the ladder at N
workers (bench/http_workers.py), each with its own pool and Cal.com client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from bench.http_service import calcom_client, serving, timing
from events.database import create_pool
from service.calcom.client import HttpCalcomClient
from service.calcom.port import CalcomBooking, CreateBooking

POOL_SIZE = 10  # the service's default

_CLAIM = """
INSERT INTO idempotency_keys (key, fingerprint, attempt_id, status, holder, locked_at,
                              first_called_at, created_at, attempt_ids)
VALUES ($1, $2, $3, 'in_flight', $4, $5, $5, $5, ARRAY[$3::uuid])
ON CONFLICT (key) DO NOTHING
RETURNING key
"""
_APPEND = "SELECT bg_append_events($1, $2, $3, $4, $5, $6, $7)"
_LOOKUP = "SELECT appointment_id, call_id, attempt_id FROM appointments WHERE booking_uid = $1"
# The appointment and its booking state, as schema.sql's bg_confirm_appointment writes them.
_APPOINTMENT = """
SELECT bg_confirm_appointment('booking_states', 'appointments', $1, $2, $3, $4, $5, $6, $7, $8,
                              $9, $10, 'booked', $11)
"""
_FINISH = """
UPDATE idempotency_keys
   SET status = 'finished', response_body = $3, finished_at = $4
 WHERE key = $1 AND attempt_id = $2
"""

_CLAIM_FOLDED = f"""
WITH claimed AS ({_CLAIM})
SELECT bg_append_events($6, -1, $7, $8, $9, $10, $11) FROM claimed
"""
_RECORD_FOLDED = f"""
WITH appointment AS ({_APPOINTMENT} AS done),
     finished AS (
         UPDATE idempotency_keys
            SET status = 'finished', response_body = $13,
                finished_at = $14
          WHERE key = $12 AND attempt_id = $5
         RETURNING 1)
SELECT bg_append_events($15, 1, $16, $17, $18, $19, $20) FROM appointment, finished
"""


def _events(types: list[str], data: list[dict[str, Any]]) -> tuple[list[Any], ...]:
    """bg_append_events' arrays: ids, types, schema versions, data and metadata as JSON."""
    metadata = orjson.dumps({"correlation_id": uuid.uuid4().hex, "producer": "bench"}).decode()
    return (
        [uuid.uuid4() for _ in types],
        types,
        [1] * len(types),
        [orjson.dumps(d).decode() for d in data],
        [metadata] * len(types),
    )


class Attempt:
    """One attempt's rows, built from the request body and Cal.com's answer with plain dicts."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.id = uuid.uuid4()
        self.body = body
        self.now = datetime.now(UTC)
        self.start = datetime.fromisoformat(body["start"])
        self.key = f"derived:{body['call_id']}:{body['event_type_id']}:{body['start']}"
        self.stream = f"attempt-{self.id}"

    def claim_args(self) -> tuple[Any, ...]:
        return (self.key, uuid.uuid4().hex, self.id, "bench-host:1", self.now)

    def intent(self) -> tuple[list[Any], ...]:
        return _events(["BookingRequested"], [{**self.body, "attempt_id": str(self.id)}])

    def create(self) -> CreateBooking:
        a = self.body["attendee"]
        return CreateBooking(
            event_type_id=self.body["event_type_id"],
            start=self.start,
            attendee_name=a["name"],
            attendee_time_zone=a["time_zone"],
            attendee_email=a["email"],
            metadata={"call_id": self.body["call_id"], "attempt_id": str(self.id)},
        )

    def appointment_args(self, booking: CalcomBooking) -> tuple[Any, ...]:
        a = self.body["attendee"]
        end = self.start + timedelta(minutes=30)
        return (
            *(self.id, booking.uid, booking.id, self.body["call_id"], self.id, 1002),
            *(self.start, end, a["name"], a["email"], self.now),
        )

    def outcome(self, booking: CalcomBooking) -> tuple[str, tuple[list[Any], ...]]:
        answer = {"attempt_id": str(self.id), "status": "confirmed", "booking_uid": booking.uid}
        events = _events(
            ["CalcomBookingReceived", "BookingConfirmed"],
            [booking.raw, {"attempt_id": str(self.id), "booking_uid": booking.uid}],
        )
        return orjson.dumps(answer).decode(), events


async def _as_today(pool: asyncpg.Pool, calcom: HttpCalcomClient, attempt: Attempt) -> str:
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(_CLAIM, *attempt.claim_args()) is None:
            raise web.HTTPConflict()
        await conn.fetchval(_APPEND, attempt.stream, -1, *attempt.intent())
    booking = await calcom.create_booking(attempt.create())
    if await pool.fetchrow(_LOOKUP, booking.uid) is not None:
        raise web.HTTPConflict()
    answer, events = attempt.outcome(booking)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_APPOINTMENT, *attempt.appointment_args(booking))
        await conn.fetchval(_APPEND, attempt.stream, 1, *events)
        await conn.execute(_FINISH, attempt.key, attempt.id, answer, datetime.now(UTC))
    return answer


async def _folded(pool: asyncpg.Pool, calcom: HttpCalcomClient, attempt: Attempt) -> str:
    claim = (*attempt.claim_args(), attempt.stream, *attempt.intent())
    if await pool.fetchval(_CLAIM_FOLDED, *claim) is None:
        raise web.HTTPConflict()
    booking = await calcom.create_booking(attempt.create())
    if await pool.fetchrow(_LOOKUP, booking.uid) is not None:
        raise web.HTTPConflict()
    answer, events = attempt.outcome(booking)
    args = (*attempt.appointment_args(booking), attempt.key, answer, datetime.now(UTC))
    await pool.fetchval(_RECORD_FOLDED, *args, attempt.stream, *events)
    return answer


async def _two(pool: asyncpg.Pool, calcom: HttpCalcomClient, attempt: Attempt) -> str:
    claim = (*attempt.claim_args(), attempt.stream, *attempt.intent())
    if await pool.fetchval(_CLAIM_FOLDED, *claim) is None:
        raise web.HTTPConflict()
    booking = await calcom.create_booking(attempt.create())
    answer, events = attempt.outcome(booking)
    args = (*attempt.appointment_args(booking), attempt.key, answer, datetime.now(UTC))
    try:
        await pool.fetchval(_RECORD_FOLDED, *args, attempt.stream, *events)
    except asyncpg.UniqueViolationError:
        raise web.HTTPConflict() from None
    return answer


Serve = Callable[[str, str], AbstractAsyncContextManager[str]]  # (dsn, Cal.com) -> origin


@asynccontextmanager
async def bare(dsn: str, calcom_url: str) -> AsyncIterator[str]:
    async def book(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"status": "confirmed", "call_id": body["call_id"]}, status=201)

    async with _app(book) as url:
        yield url


@asynccontextmanager
async def one_call(dsn: str, calcom_url: str) -> AsyncIterator[str]:
    async with calcom_client(calcom_url) as calcom:

        async def book(request: web.Request) -> web.Response:
            attempt = Attempt(await request.json())
            booking = await calcom.create_booking(attempt.create())
            return web.json_response({"status": "confirmed", "uid": booking.uid}, status=201)

        async with _app(book) as url:
            yield url


def _with_writes(folded: bool, *, two: bool = False) -> Serve:
    @asynccontextmanager
    async def serve(dsn: str, calcom_url: str) -> AsyncIterator[str]:
        pool = await create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, reset_sessions=False)
        try:
            async with calcom_client(calcom_url) as calcom:
                write = _two if two else _folded if folded else _as_today

                async def book(request: web.Request) -> web.Response:
                    answer = await write(pool, calcom, Attempt(await request.json()))
                    return web.Response(text=answer, status=201, content_type="application/json")

                async with _app(book) as url:
                    yield url
        finally:
            await pool.close()

    return serve


# The port a rung served by `python -m bench.http_ceilings` shares with its sibling processes;
# unset, a rung is served in this process on a free port of its own.
_SHARED_PORT: ContextVar[int | None] = ContextVar("bench_shared_port", default=None)


@asynccontextmanager
async def _app(book: Callable[[web.Request], Any]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/booking-attempts", book)
    app.router.add_get("/health", _health)  # for a parent to see every process up
    port = _SHARED_PORT.get()
    if port is None:
        async with serving(app) as url:
            yield url
        return
    # As `serving` has it (the timing middleware outermost), on the shared port.
    app.middlewares.insert(0, timing)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _health(request: web.Request) -> web.Response:
    return web.Response(text=str(os.getpid()))


TWO_STATEMENTS = "+ the same writes in two statements (2 round trips)"
LADDER: dict[str, Serve] = {
    "bare aiohttp": bare,
    "+ one Cal.com call": one_call,
    "+ the ledger's writes, a transaction per phase (11 round trips)": _with_writes(folded=False),
    "+ the same writes, a statement per phase (3 round trips)": _with_writes(folded=True),
    TWO_STATEMENTS: _with_writes(folded=True, two=True),
}


async def _serve_until_terminated(rung: str, dsn: str, calcom_url: str, port: int) -> None:
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    _SHARED_PORT.set(port)
    async with LADDER[rung](dsn, calcom_url):
        await stopped.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_ceilings", description=__doc__)
    parser.add_argument("--rung", required=True, choices=list(LADDER))
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    dsn, calcom_url = os.environ["DATABASE_URL"], os.environ["CALCOM_BASE_URL"]
    asyncio.run(_serve_until_terminated(args.rung, dsn, calcom_url, args.port))


if __name__ == "__main__":
    main()
