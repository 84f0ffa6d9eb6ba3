"""A booking log at scale for replay and audit: 1,000,000 events generated inside PostgreSQL.

Each attempt is what the workflow writes: `BookingRequested` in one transaction, then
`CalcomBookingReceived` with `BookingConfirmed` (four attempts in five) or, for the fifth, the
incident: Cal.com handed back the previous attempt's booking (its uid, its older `createdAt`,
another call's metadata) and `BookingRejected` names all three failing layers. Two attempts per
call. The JSON has every field of the current models, as pydantic writes them (`check` decodes
one event of each type and compares its keys with the model's), and each event its metadata.

`transaction_id` is given explicitly, one per transaction as the service would have had, taken
just below the server's current transaction id so that every event is behind the horizon. So is
`position` (3 * attempt + version, what the identity would have handed out in this order), so
that chunks can be inserted by several connections at once and the log is the same whatever
their interleaving. The secondary indexes and the unique constraints are dropped for the load and
rebuilt after it, from their own definitions (at 10,000,000 events, inserting into the two
random-keyed unique indexes was most of the load; bench/scale.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

import asyncpg

from events.booking import (
    BookingConfirmed,
    BookingRejected,
    BookingRequested,
    CalcomBookingReceived,
)
from events.database import create_pool
from events.models import Event
from events.store import EventStore

EVENTS_PER_ATTEMPT = 3
CHUNK = 50_000  # attempts per INSERT statement

_TS = """to_char(({0}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""

# $1, $2: the attempts [from, to); $3: the first transaction id; $4 / $5: the ids per transaction;
# $6: one attempt in $6 is the incident's (refused); $7: EVENTS_PER_ATTEMPT.
_INSERT = f"""
INSERT INTO events (position, transaction_id, stream_id, version, event_id, type, schema_version,
                    data, metadata, recorded_at)
OVERRIDING SYSTEM VALUE
SELECT $7 * a.i + e.version,
       ($3 + (2 * a.i + least(e.version, 2) - 1) * $4 / $5)::text::xid8,
       'attempt-' || a.attempt_id, e.version, gen_random_uuid(), e.type, 1, e.data,
       jsonb_build_object('correlation_id', md5('r' || a.i), 'producer', 'bench-host:4242'),
       a.requested_at + e.version * interval '150 milliseconds'
  FROM (SELECT i, md5('a' || i)::uuid::text AS attempt_id,
               'call_' || left(md5('c' || (i / 2)), 27) AS call_id,
               'call_' || left(md5('c' || ((i - 1) / 2)), 27) AS previous_call_id,
               md5('a' || (i - 1))::uuid::text AS previous_attempt_id,
               i % $6 = $6 - 1 AS incident,
               CASE WHEN i % $6 = $6 - 1 THEN i - 1 ELSE i END AS booked,
               'caller+' || (i / 2) || '@example.com' AS email,
               timestamptz '2025-10-01 00:00:00+00' + i * interval '2 seconds' AS requested_at
          FROM generate_series($1::bigint, $2::bigint - 1) AS i) AS p
 CROSS JOIN LATERAL (
     SELECT p.*, left(md5('u' || p.booked), 22) AS booking_uid, p.booked + 1 AS booking_id,
            timestamptz '2026-01-05 08:00:00+00'
                + (p.booked % 35000) * interval '30 minutes' AS start_at,
            CASE WHEN p.incident THEN p.requested_at - interval '35 minutes'
                 ELSE p.requested_at + interval '200 milliseconds' END AS created_at
 ) AS a
 CROSS JOIN LATERAL (VALUES
     (1, 'BookingRequested', jsonb_build_object(
         'attempt_id', a.attempt_id, 'call_id', a.call_id, 'event_type_id', 1002,
         'start', {_TS.format("a.start_at")},
         'attendee', jsonb_build_object('name', 'Hansi Sputer', 'email', a.email,
                                        'time_zone', 'Europe/Berlin',
                                        'phone_number', '+4915112345678'),
         'metadata', jsonb_build_object('agent', 'retell'),
         'idempotency_key', 'derived:' || a.call_id || ':1002:' || {_TS.format("a.start_at")},
         'fingerprint', md5('f' || a.i), 'retry_of', NULL,
         'requested_at', {_TS.format("a.requested_at")},
         'options', jsonb_build_object('booking_fields', jsonb_build_object(),
                                       'length_in_minutes', NULL, 'language', NULL,
                                       'guests', jsonb_build_array(), 'location', NULL))),
     (2, 'CalcomBookingReceived', jsonb_build_object(
         'attempt_id', a.attempt_id, 'call_id', a.call_id, 'booking_uid', a.booking_uid,
         'booking_id', a.booking_id, 'status', 'accepted',
         'start', {_TS.format("a.start_at")},
         'end', {_TS.format("a.start_at + interval '30 minutes'")},
         'created_at', {_TS.format("a.created_at")},
         'booking_metadata', jsonb_build_object(
             'agent', 'retell',
             'call_id', CASE WHEN a.incident THEN a.previous_call_id ELSE a.call_id END,
             'attempt_id', CASE WHEN a.incident THEN a.previous_attempt_id
                                ELSE a.attempt_id END),
         'attendees', jsonb_build_array(jsonb_build_object(
             'name', 'Hansi Sputer', 'email', a.email, 'time_zone', 'Europe/Berlin')),
         'first_called_at', {_TS.format("a.requested_at")},
         'received_at', {_TS.format("a.requested_at + interval '350 milliseconds'")},
         'reconciled', false)),
     (3, CASE WHEN a.incident THEN 'BookingRejected' ELSE 'BookingConfirmed' END,
      CASE WHEN a.incident THEN jsonb_build_object(
         'attempt_id', a.attempt_id, 'call_id', a.call_id, 'guard', 'freshness', 'layer', 1,
         'reason', 'stale_booking',
         'detail', jsonb_build_object(
             'created_at', {_TS.format("a.created_at")},
             'first_called_at', {_TS.format("a.requested_at")},
             'age_seconds', 2100.0, 'max_age_seconds', 30.0,
             'failures', jsonb_build_array(
                 jsonb_build_object('guard', 'freshness', 'layer', 1,
                     'reason', 'stale_booking', 'detail', jsonb_build_object(
                         'created_at', {_TS.format("a.created_at")},
                         'first_called_at', {_TS.format("a.requested_at")},
                         'age_seconds', 2100.0, 'max_age_seconds', 30.0)),
                 jsonb_build_object('guard', 'call_identity', 'layer', 2,
                     'reason', 'call_id_mismatch', 'detail', jsonb_build_object(
                         'expected_call_id', a.call_id, 'booking_call_id', a.previous_call_id)),
                 jsonb_build_object('guard', 'existing_appointment', 'layer', 3,
                     'reason', 'duplicate_booking', 'detail', jsonb_build_object(
                         'booking_uid', a.booking_uid,
                         'appointment_id', a.previous_attempt_id,
                         'held_by_call_id', a.previous_call_id))),
             'notes', jsonb_build_array()),
         'booking_uid', a.booking_uid,
         'rejected_at', {_TS.format("a.requested_at + interval '400 milliseconds'")})
      ELSE jsonb_build_object(
         'attempt_id', a.attempt_id, 'appointment_id', a.attempt_id, 'call_id', a.call_id,
         'booking_uid', a.booking_uid, 'booking_id', a.booking_id, 'event_type_id', 1002,
         'start', {_TS.format("a.start_at")},
         'end', {_TS.format("a.start_at + interval '30 minutes'")},
         'attendee_name', 'Hansi Sputer', 'attendee_email', a.email,
         'confirmed_at', {_TS.format("a.requested_at + interval '400 milliseconds'")},
         'status', 'booked') END)
 ) AS e(version, type, data)
 ORDER BY a.i, e.version
"""

_SECONDARY_INDEXES = """
SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
 WHERE x.indrelid = 'events'::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
"""
# The unique constraints (event id; stream and version): their keys are random, so inserting
# into them row by row costs more than building them once from the finished table.
_UNIQUE_CONSTRAINTS = """
SELECT conname AS name, pg_get_constraintdef(oid) AS definition
  FROM pg_constraint
 WHERE conrelid = 'events'::regclass AND contype = 'u'
 ORDER BY conname
"""
# The identity goes on from the last position, as if the load had taken its values.
_SET_IDENTITY = """
SELECT setval(pg_get_serial_sequence('events', 'position'), max(position)) FROM events
"""

_AHEAD_OF_HORIZON = """
SELECT count(*) FROM events
 WHERE transaction_id < '3' OR transaction_id >= pg_snapshot_xmin(pg_current_snapshot())
"""

MODELS: tuple[type[Event], ...] = (
    BookingRequested,
    CalcomBookingReceived,
    BookingConfirmed,
    BookingRejected,
)


def attempts(events: int) -> int:
    """Attempts in a log of at least `events` events."""
    return -(-events // EVENTS_PER_ATTEMPT)


def call_id(attempt: int) -> str:
    """The call of attempt `attempt` (as the SQL above names it)."""
    return "call_" + hashlib.md5(f"c{attempt // 2}".encode()).hexdigest()[:27]


# One attempt in REFUSED_EVERY is the incident's: 5 in the default log, 2 in the refusals log.
REFUSED_EVERY = 5


def booking_uid(attempt: int, refused_every: int = REFUSED_EVERY) -> str:
    """The uid of the booking attempt `attempt` made (or was handed, for the incident's)."""
    booked = attempt - 1 if attempt % refused_every == refused_every - 1 else attempt
    return hashlib.md5(f"u{booked}".encode()).hexdigest()[:22]


def confirmed(events: int, refused_every: int = REFUSED_EVERY) -> int:
    """How many attempts of the log were confirmed: the appointments a rebuild must make."""
    n = attempts(events)
    return n - n // refused_every  # attempts 4, 9, 14, ... are the incident's (every 5)


async def load(
    dsn: str,
    events: int,
    progress: Callable[[str], None],
    *,
    refused_every: int = REFUSED_EVERY,
    connections: int = 1,
) -> None:
    """Fill the (empty) events table of `dsn` with `events` events, then index and analyze it;
    one attempt in `refused_every` is refused (the incident's). `connections` insert chunks
    at once (the log is the same for any number)."""
    if refused_every < 2:
        raise ValueError(f"refused_every must be at least 2, got {refused_every}")
    if connections < 1:
        raise ValueError(f"connections must be at least 1, got {connections}")
    conn = await asyncpg.connect(dsn)
    try:
        await _load(conn, dsn, attempts(events), progress, refused_every, connections)
    finally:
        await conn.close()
    await check(dsn)


async def _load(
    conn: asyncpg.Connection,
    dsn: str,
    count: int,
    progress: Callable[[str], None],
    refused_every: int,
    connections: int,
) -> None:
    started = time.perf_counter()
    transactions = 2 * count
    current = int(await conn.fetchval("SELECT pg_current_xact_id()::text"))
    while current < 2 * 1_000 + 3:
        # A new server (a fresh BOOKING_GUARD_BENCH_DATA_DIR) has handed out fewer ids than
        # the 1,000 kept free below the present: without room the ids wrapped around to the
        # top of xid8, ahead of every snapshot, and replay saw none of the log. Use some up.
        current = int(await conn.fetchval("SELECT pg_current_xact_id()::text"))
    # Below the present by 1,000 ids (a margin larger than the ids there are made them
    # negative, and they wrapped round xid8's range).
    margin = 1_000
    room = current - margin - 3
    if room >= transactions:  # one id per transaction, just below the present
        first, per, of = current - margin - transactions, 1, 1
    else:  # a young server: share the ids there are
        first, per, of = 3, room, transactions
    indexes = await conn.fetch(_SECONDARY_INDEXES)
    constraints = await conn.fetch(_UNIQUE_CONSTRAINTS)
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["name"]}"')
    for constraint in constraints:
        await conn.execute(f'ALTER TABLE events DROP CONSTRAINT "{constraint["name"]}"')
    chunks = [(low, min(low + CHUNK, count)) for low in range(0, count, CHUNK)]
    inserted = 0

    async def insert(connection: asyncpg.Connection) -> None:
        nonlocal inserted
        await connection.execute("SET synchronous_commit = off")
        while chunks:
            low, high = chunks.pop(0)
            args = (low, high, first, per, of, refused_every, EVENTS_PER_ATTEMPT)
            await connection.execute(_INSERT, *args)
            inserted += high - low
            took = time.perf_counter() - started
            progress(f"log dataset: {EVENTS_PER_ATTEMPT * inserted:,} events ({took:.0f} s)")

    others = [await asyncpg.connect(dsn) for _ in range(connections - 1)]
    try:
        await asyncio.gather(*(insert(c) for c in (conn, *others)))
    finally:
        for other in others:
            await other.close()
    await conn.execute(_SET_IDENTITY)
    progress(f"log dataset: building indexes ({time.perf_counter() - started:.0f} s)")
    # Each index sorted in memory rather than in temporary files where it fits.
    await conn.execute("SET maintenance_work_mem = '512MB'")
    for constraint in constraints:
        await conn.execute(
            f'ALTER TABLE events ADD CONSTRAINT "{constraint["name"]}" {constraint["definition"]}'
        )
    for index in indexes:
        await conn.execute(index["definition"])
    progress(f"log dataset: vacuum and analyze ({time.perf_counter() - started:.0f} s)")
    await conn.execute("VACUUM ANALYZE events")
    await conn.execute("CHECKPOINT")
    took = time.perf_counter() - started
    progress(f"log dataset: {EVENTS_PER_ATTEMPT * count:,} events in {took:.0f} s")


async def check(dsn: str) -> None:
    """Every event is behind the transaction horizon, and one event of each type decodes into
    its model and has exactly the model's fields."""
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        ahead = await pool.fetchval(_AHEAD_OF_HORIZON)
        if ahead:
            raise AssertionError(f"{ahead:,} events are not behind the transaction horizon")
        store = EventStore(pool)
        for model in MODELS:
            found = await store.read_all(types=[model.type_name], limit=1)
            if not found or not isinstance(found[0].event, model):
                raise AssertionError(f"the dataset has no readable {model.type_name}")
            keys = await pool.fetchval(
                "SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys("
                "(SELECT data FROM events WHERE position = $1)) AS k",
                found[0].position,
            )
            if set(keys) != set(model.model_fields):
                raise AssertionError(f"{model.type_name} keys {keys} are not its model's fields")
    finally:
        await pool.close()


def size(quick: bool) -> int:
    """Events in the log: 1,000,000 (issue 7), or 60,000 for a smoke test."""
    return 60_000 if quick else 1_000_000
