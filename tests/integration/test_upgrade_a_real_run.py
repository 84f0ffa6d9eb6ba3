"""A database written by the baseline-era service, upgraded through every later migration, still
serves: its data is intact, a keyed retry replays the stored answer, and replay rebuilds the same
read models.

The run is written as the baseline service wrote it (its commit 4102bba and the schema of
0001_baseline.sql): events appended through the store, on the `attempt-<id>` streams; the
appointment written inline with the baseline's 13 columns; idempotency keys with the baseline's
`response_status` column, a v1 (unprefixed) fingerprint and a stored answer that still carries
`status_code`; the rejections runner's row and checkpoint. Today's code cannot write that schema,
so the rows are plain SQL in the baseline's shape.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from events.booking import (
    Attendee,
    BookingConfirmed,
    BookingRejected,
    BookingRequested,
    CalcomBookingReceived,
    attempt_stream,
)
from events.migrate import current_version, load_migrations, migrate
from events.models import NewEvent
from events.store import EventStore, ExpectedVersion
from projections import catalog
from projections.rebuild import rebuild
from service.app import create_app
from service.booking.clock import FakeClock
from service.booking.models import BookingRequest
from service.calcom.client import HttpCalcomClient
from service.calcom.simulator.server import CalcomSimulator
from service.calcom.wiring import serve_simulator
from service.settings import Settings
from tests.e2e.conftest import INCIDENT_MORNING, INCIDENT_SLOT, attempt_body
from tests.integration.conftest import NewDatabase, OpenPool
from tests.integration.migration_dirs import copy_migrations

CONFIRMED_CALL = "call_baseline_687"
REJECTED_CALL = "call_baseline_688"
UID = "uid-baseline-687"
KEY = "key-baseline-687"

_APPOINTMENT = """
INSERT INTO appointments (appointment_id, booking_uid, booking_id, call_id, attempt_id,
                          event_type_id, start_at, end_at, attendee_name, attendee_email,
                          status, confirmed_at, updated_at)
VALUES ($1, $2, 4711, $3, $4, 1001, $5, $6, $7, $8, 'booked', $9, $9)
"""
_KEY = """
INSERT INTO idempotency_keys (key, fingerprint, attempt_id, status, response_status,
                              response_body, holder, locked_at, first_called_at, attempt_ids,
                              created_at, finished_at)
VALUES ($1, $2, $3, 'finished', $4, $5::jsonb, 'baseline-host:4242', $6, $6, ARRAY[$3]::uuid[],
        $6, $7)
"""
_REJECTION = """
INSERT INTO rejections (event_id, position, attempt_id, call_id, guard, layer, reason,
                        booking_uid, detail, rejected_at)
SELECT event_id, position, $1, $2, 'call_identity', 2, 'call_id_mismatch', $3, data -> 'detail',
       $4
  FROM events WHERE type = 'BookingRejected'
"""
_CHECKPOINT = """
INSERT INTO projection_checkpoints (name, transaction_id, position)
SELECT 'rejections', transaction_id, position FROM events ORDER BY position DESC LIMIT 1
"""


@dataclass(frozen=True)
class BaselineRun:
    body: dict[str, Any]
    appointment_id: uuid.UUID
    confirmed_answer: dict[str, Any]


def _answer(attempt_id: uuid.UUID, status_code: int, **fields: Any) -> dict[str, Any]:
    # The baseline's AttemptOutcome.model_dump(mode="json"): every field, None included.
    answer = {"attempt_id": str(attempt_id), "appointment": None, "reason": None, "guard": None}
    return {**answer, "detail": None, "retryable": None, **fields, "status_code": status_code}


async def record_baseline_run(pool: asyncpg.Pool) -> BaselineRun:
    """Call 687 books the slot; Cal.com hands its booking to call 688, which is refused."""
    store = EventStore(pool)
    body = attempt_body(CONFIRMED_CALL)
    request = BookingRequest.model_validate(body)
    start = request.start
    end = start + timedelta(minutes=30)
    moment = INCIDENT_MORNING - timedelta(hours=1)
    attendee = Attendee(name=request.attendee.name, email="termin@example.com", time_zone="UTC")
    confirmed_attempt, appointment_id = uuid.uuid4(), uuid.uuid4()

    def requested(attempt_id: uuid.UUID, call_id: str, key: str, at: datetime) -> NewEvent:
        return NewEvent(
            BookingRequested(
                attempt_id=attempt_id,
                call_id=call_id,
                event_type_id=1001,
                start=start,
                attendee=attendee,
                idempotency_key=key,
                fingerprint=request.legacy_fingerprint(),
                requested_at=at,
            )
        )

    def received(attempt_id: uuid.UUID, call_id: str, at: datetime) -> NewEvent:
        return NewEvent(
            CalcomBookingReceived(
                attempt_id=attempt_id,
                call_id=call_id,
                booking_uid=UID,
                booking_id=4711,
                status="accepted",
                start=start,
                end=end,
                created_at=moment + timedelta(seconds=1),
                booking_metadata={"call_id": CONFIRMED_CALL},
                first_called_at=at,
                received_at=at + timedelta(seconds=1),
            )
        )

    stream = attempt_stream(confirmed_attempt)
    await store.append(
        stream,
        [requested(confirmed_attempt, CONFIRMED_CALL, KEY, moment)],
        expected_version=ExpectedVersion.NO_STREAM,
    )
    confirmed_at = moment + timedelta(seconds=1)
    confirmed = BookingConfirmed(
        attempt_id=confirmed_attempt,
        appointment_id=appointment_id,
        call_id=CONFIRMED_CALL,
        booking_uid=UID,
        booking_id=4711,
        event_type_id=1001,
        start=start,
        end=end,
        attendee_name=attendee.name,
        attendee_email=attendee.email,
        confirmed_at=confirmed_at,
    )
    async with pool.acquire() as conn, conn.transaction():
        # The baseline confirmed inline: the appointment row in the outcome's transaction.
        await store.append(
            stream,
            [received(confirmed_attempt, CONFIRMED_CALL, moment), NewEvent(confirmed)],
            expected_version=ExpectedVersion.STREAM_EXISTS,
            connection=conn,
        )
        await conn.execute(
            _APPOINTMENT,
            appointment_id,
            UID,
            CONFIRMED_CALL,
            confirmed_attempt,
            start,
            end,
            attendee.name,
            attendee.email,
            confirmed_at,
        )
    appointment = {
        "appointment_id": str(appointment_id),
        "booking_uid": UID,
        "booking_id": 4711,
        "call_id": CONFIRMED_CALL,
        "attempt_id": str(confirmed_attempt),
        "event_type_id": 1001,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "attendee_name": attendee.name,
        "attendee_email": attendee.email,
        "status": "booked",
    }
    confirmed_answer = _answer(confirmed_attempt, 201, status="confirmed", appointment=appointment)
    await pool.execute(
        _KEY,
        KEY,
        request.legacy_fingerprint(),
        confirmed_attempt,
        201,
        json.dumps(confirmed_answer),
        moment,
        confirmed_at,
    )

    later = moment + timedelta(minutes=35)
    rejected_attempt = uuid.uuid4()
    rejected_stream = attempt_stream(rejected_attempt)
    derived = f"derived:{REJECTED_CALL}:1001:{start.isoformat()}"
    await store.append(
        rejected_stream,
        [requested(rejected_attempt, REJECTED_CALL, derived, later)],
        expected_version=ExpectedVersion.NO_STREAM,
    )
    detail = {"expected_call_id": REJECTED_CALL, "booking_call_id": CONFIRMED_CALL}
    rejected = BookingRejected(
        attempt_id=rejected_attempt,
        call_id=REJECTED_CALL,
        guard="call_identity",
        layer=2,
        reason="call_id_mismatch",
        detail=detail,
        booking_uid=UID,
        rejected_at=later + timedelta(seconds=1),
    )
    await store.append(
        rejected_stream,
        [received(rejected_attempt, REJECTED_CALL, later), NewEvent(rejected)],
        expected_version=ExpectedVersion.STREAM_EXISTS,
    )
    rejected_answer = _answer(
        rejected_attempt,
        409,
        status="rejected",
        reason="call_id_mismatch",
        guard="call_identity",
        detail=detail,
    )
    await pool.execute(
        _KEY,
        derived,
        request.model_copy(update={"call_id": REJECTED_CALL}).legacy_fingerprint(),
        rejected_attempt,
        409,
        json.dumps(rejected_answer),
        later,
        later + timedelta(seconds=1),
    )
    await store.close()
    # The rejections runner had applied everything: its row and its checkpoint.
    await pool.execute(_REJECTION, rejected_attempt, REJECTED_CALL, UID, rejected.rejected_at)
    await pool.execute(_CHECKPOINT)
    return BaselineRun(body, appointment_id, confirmed_answer)


async def _rows(pool: asyncpg.Pool, table: str, key: str) -> list[dict[str, Any]]:
    return [dict(row) for row in await pool.fetch(f"SELECT * FROM {table} ORDER BY {key}")]


async def test_a_baseline_run_upgrades_serves_its_keys_and_replays_to_the_same_rows(
    new_database: NewDatabase, open_pool: OpenPool, tmp_path: Path
) -> None:
    dsn = await new_database()
    pool = await open_pool(dsn)
    baseline, *later = load_migrations()
    await migrate(pool, copy_migrations(tmp_path / "baseline", [baseline]))
    run = await record_baseline_run(pool)
    events_before = await _rows(pool, "events", "position")

    applied = await migrate(pool)

    assert [m.label for m in applied] == [m.label for m in later]
    async with pool.acquire() as conn:
        assert await current_version(conn) == baseline.version + len(later)
    assert await _rows(pool, "events", "position") == events_before
    [appointment] = await _rows(pool, "appointments", "appointment_id")
    assert appointment["appointment_id"] == run.appointment_id
    assert (appointment["status"], appointment["origin_uid"]) == ("booked", UID)
    keys = await _rows(pool, "idempotency_keys", "key")
    assert [k["key"] for k in keys] == [
        f"derived:{REJECTED_CALL}:1001:{INCIDENT_SLOT[:-1]}+00:00",
        KEY,
    ]
    assert all("response_status" not in k and k["status"] == "finished" for k in keys)
    assert keys[1]["response_body"] == run.confirmed_answer  # status_code and all
    rejections_before = await _rows(pool, "rejections", "event_id")
    assert [r["reason"] for r in rejections_before] == ["call_id_mismatch"]

    simulator = CalcomSimulator(now=FakeClock(INCIDENT_MORNING).now)
    settings = Settings(database_url=dsn, recovery_interval_seconds=0)
    async with (
        serve_simulator(simulator) as base_url,
        HttpCalcomClient(api_key="cal_test", base_url=base_url) as calcom,
    ):
        app = create_app(settings, calcom=calcom, clock=FakeClock(INCIDENT_MORNING))
        async with TestClient(TestServer(app)) as client:
            response = await client.post(
                "/v1/booking-attempts", json=run.body, headers={"Idempotency-Key": KEY}
            )
            answer = await response.json()
            assert response.status == 201, answer
            assert response.headers["Idempotent-Replayed"] == "true"
            assert answer["appointment"]["appointment_id"] == str(run.appointment_id)
            assert "status_code" not in answer
            timeline = await client.get(f"/v1/calls/{REJECTED_CALL}/events")
            assert [e["type"] for e in (await timeline.json())["events"]] == [
                "BookingRequested",
                "CalcomBookingReceived",
                "BookingRejected",
            ]
    assert [r for r in simulator.requests if r.method == "POST"] == []  # nothing booked again

    appointments_before = await _rows(pool, "appointments", "appointment_id")
    for projection in catalog.all_projections().values():
        await rebuild(pool, projection)
    assert await _rows(pool, "appointments", "appointment_id") == appointments_before
    assert await _rows(pool, "rejections", "event_id") == rejections_before
