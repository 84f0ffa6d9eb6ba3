"""A booking's whole life over HTTP against the simulator: nothing said that Cal.com does not hold.

The cases of issue 12: a cancelled booking is never confirmed; a pending one is
`pending_confirmation`; our own booking survives Cal.com's clock skew; webhooks out of order
still end right; one call with two keys at once gets one booking and two answers naming it;
a replayed answer says what is true now.
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.api.keys import METRICS, POOL, RECONCILER, WORKFLOW
from service.booking.recovery import RecoveryLoop
from service.calcom.port import CreateBooking
from service.calcom.simulator.event_types import CONFIRMATION_EVENT_TYPE_ID
from service.cli.reconcile import parse_since, reconcile
from tests.e2e.conftest import CALL_687, PLAIN, RETURNS_EXISTING, Harness, MakeHarness, attempt_body
from tests.e2e.signed import CALCOM_SECRET, post_calcom
from tests.e2e.test_webhooks_calcom import webhook


async def rejections_and_refusals(harness: Harness) -> tuple[int, int]:
    """BookingRejected events and layer-4 refusals in the ledger."""
    rejected = await harness.pool.fetchval(
        "SELECT count(*) FROM events WHERE type = 'BookingRejected'"
    )
    layer4 = await harness.pool.fetchval(
        "SELECT count(*) FROM events WHERE type = 'BookingRejected' AND data->>'layer' = '4'"
    )
    return int(rejected), int(layer4)


async def test_a_booking_cancelled_while_its_answer_was_lost_is_never_confirmed(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness()
    # Cal.com writes the booking; every answer is lost; the producer hears 502.
    harness.simulator.add_faults("drop_after_write@create", *["503@find"] * 3)
    status, failed = await harness.book(
        attempt_body(event_type_id=PLAIN), **{"Idempotency-Key": "k1"}
    )
    assert status == 502 and failed["status"] == "failed", failed
    (booking,) = harness.simulator.ledger.bookings.values()
    # The attendee cancels from Cal.com's e-mail.
    harness.simulator.ledger.cancel(booking.uid, reason="attendee", now=harness.clock.now())

    status, retried = await harness.book(
        attempt_body(event_type_id=PLAIN), **{"Idempotency-Key": "k1"}
    )

    assert status == 409, retried
    assert (retried["guard"], retried["reason"]) == ("status", "booking_cancelled")
    assert await harness.appointment_count() == 0


async def test_a_booking_awaiting_the_host_is_pending_confirmation(harness: Harness) -> None:
    body = attempt_body(event_type_id=CONFIRMATION_EVENT_TYPE_ID)
    status, answer = await harness.book(body)

    assert status == 201, answer
    assert answer["status"] == "pending_confirmation"
    assert answer["appointment"]["status"] == "pending"
    row = await harness.pool.fetchrow("SELECT status FROM appointments")
    assert row is not None and row["status"] == "pending"


async def test_our_own_booking_is_confirmed_with_cal_coms_clock_45_seconds_behind(
    harness: Harness,
) -> None:
    harness.simulator.set_clock(harness.clock.now() - timedelta(seconds=45))

    status, answer = await harness.book(attempt_body(event_type_id=PLAIN))

    assert status == 201, answer
    assert answer["status"] == "confirmed"


async def test_a_cancellation_of_the_new_uid_before_its_reschedule_is_not_lost(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(calcom_webhook_secret=CALCOM_SECRET)
    status, answer = await harness.book(attempt_body(event_type_id=PLAIN))
    assert status == 201
    old_uid = answer["appointment"]["booking_uid"]

    # In Cal.com the booking is moved, then the new one cancelled...
    ledger, now = harness.simulator.ledger, harness.clock.now()
    new = ledger.reschedule(old_uid, {"start": "2025-10-11T06:00:00Z"}, now=now)
    ledger.cancel(new.uid, reason="changed my mind", now=now)
    # ...and the deliveries overtake each other: the new booking's cancellation comes first.
    cancel = webhook("BOOKING_CANCELLED", new.uid, cancellationReason="changed my mind")
    assert (await post_calcom(harness, cancel)).status == 200
    move = webhook(
        "BOOKING_RESCHEDULED",
        new.uid,
        rescheduleUid=old_uid,
        startTime="2025-10-11T06:00:00Z",
        endTime="2025-10-11T06:30:00Z",
    )
    assert (await post_calcom(harness, move)).status == 200

    row = await harness.pool.fetchrow("SELECT booking_uid, status FROM appointments")
    assert row is not None
    assert (row["booking_uid"], row["status"]) == (new.uid, "cancelled")


async def test_two_keys_of_one_call_at_once_make_one_booking_and_two_answers(
    harness: Harness,
) -> None:
    body = attempt_body(event_type_id=PLAIN)
    harness.simulator.add_faults("delay:100@create")

    answers = await asyncio.gather(
        harness.book(body, **{"Idempotency-Key": "a"}),
        harness.book(body, **{"Idempotency-Key": "b"}),
    )

    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 201], answers
    uids = {answer["appointment"]["booking_uid"] for _, answer in answers}
    assert len(uids) == 1 and len(harness.simulator.ledger.bookings) == 1
    assert {answer["status"] for _, answer in answers} == {"confirmed"}
    assert await rejections_and_refusals(harness) == (0, 0)
    types = await harness.event_types()
    assert types.count("BookingAlreadyHeld") == 1


async def test_a_new_key_for_a_slot_the_call_holds_answers_200_before_asking_cal_com(
    harness: Harness,
) -> None:
    for event_type in (PLAIN, RETURNS_EXISTING):
        body = attempt_body(event_type_id=event_type, start="2025-10-10T07:00:00Z")
        if event_type == RETURNS_EXISTING:
            body = attempt_body(event_type_id=event_type, start="2025-10-10T08:00:00Z")
        status, first = await harness.book(body, **{"Idempotency-Key": f"first-{event_type}"})
        assert status == 201, first
        creates_before = sum(1 for r in harness.simulator.requests if r.method == "POST")

        status, again = await harness.book(body, **{"Idempotency-Key": f"again-{event_type}"})

        assert status == 200, again
        assert again["status"] == "confirmed"
        assert again["appointment"] == first["appointment"]
        creates_after = sum(1 for r in harness.simulator.requests if r.method == "POST")
        assert creates_after == creates_before  # Cal.com was not asked again
    assert await rejections_and_refusals(harness) == (0, 0)


async def test_a_replayed_answer_says_the_booking_was_cancelled_since(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(calcom_webhook_secret=CALCOM_SECRET)
    body = attempt_body(CALL_687, event_type_id=PLAIN)
    status, answer = await harness.book(body, **{"Idempotency-Key": "replay-me"})
    assert status == 201
    uid = answer["appointment"]["booking_uid"]
    harness.simulator.ledger.cancel(uid, reason="attendee", now=harness.clock.now())
    assert (await post_calcom(harness, webhook("BOOKING_CANCELLED", uid))).status == 200

    status, replayed = await harness.book(body, **{"Idempotency-Key": "replay-me"})

    assert replayed["status"] == "cancelled", replayed
    assert replayed["appointment"]["status"] == "cancelled"
    read: dict[str, Any] = await (
        await harness.client.get(f"/v1/booking-attempts/{answer['attempt_id']}")
    ).json()
    assert read["status"] == "cancelled"


async def lost_answer_booking(harness: Harness, key: str) -> str:
    """Cal.com writes the booking, every answer is lost: the producer hears 502. Its uid."""
    harness.simulator.add_faults("drop_after_write@create", *["503@find"] * 3)
    status, failed = await harness.book(
        attempt_body(event_type_id=PLAIN), **{"Idempotency-Key": key}
    )
    assert status == 502 and failed["status"] == "failed", failed
    (booking,) = harness.simulator.ledger.bookings.values()
    assert booking.status == "accepted"
    return booking.uid


async def test_an_orphan_nobody_came_back_for_is_cancelled_after_the_grace(
    harness: Harness,
) -> None:
    uid = await lost_answer_booking(harness, "never-again")
    reconciler = harness.client.app[RECONCILER]
    assert await reconciler.run_queue() == []  # within the grace: the producer may come back

    harness.clock.advance(timedelta(seconds=601))
    findings = await reconciler.run_queue()

    assert [(f.kind, f.booking_uid) for f in findings] == [("orphan_cancelled", uid)]
    assert harness.simulator.ledger.get(uid).status == "cancelled"
    assert "OrphanBookingCancelled" in await harness.event_types()
    assert await reconciler.run_queue() == []  # settled once
    text = await (await harness.client.get("/metrics")).text()
    assert 'booking_guard_orphan_bookings_total{action="cancelled"} 1.0' in text


async def test_under_the_alert_policy_an_orphan_is_recorded_and_left_live(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(orphan_policy="alert")
    uid = await lost_answer_booking(harness, "alert-only")
    harness.clock.advance(timedelta(seconds=601))

    findings = await harness.client.app[RECONCILER].run_queue()

    assert [(f.kind, f.booking_uid) for f in findings] == [("orphan_alerted", uid)]
    assert harness.simulator.ledger.get(uid).status == "accepted"
    assert "OrphanBookingDetected" in await harness.event_types()


async def test_a_producer_back_within_the_grace_gets_the_booking_and_nothing_is_cancelled(
    harness: Harness,
) -> None:
    uid = await lost_answer_booking(harness, "back-in-time")

    status, answer = await harness.book(
        attempt_body(event_type_id=PLAIN), **{"Idempotency-Key": "back-in-time"}
    )
    assert status == 201 and answer["appointment"]["booking_uid"] == uid

    harness.clock.advance(timedelta(seconds=601))
    assert await harness.client.app[RECONCILER].run_queue() == []
    assert harness.simulator.ledger.get(uid).status == "accepted"


async def run_reconcile(harness: Harness, *, dry_run: bool) -> tuple[int, dict[str, Any]]:
    assert harness.settings is not None and harness.calcom is not None
    out = io.StringIO()
    status = await reconcile(
        harness.settings,
        since=datetime(2025, 1, 1, tzinfo=UTC),
        dry_run=dry_run,
        as_json=True,
        out=out,
        calcom=harness.calcom,
    )
    body: dict[str, Any] = json.loads(out.getvalue())
    return status, body


async def test_reconcile_reports_drift_settles_it_and_then_reports_none(
    harness: Harness,
) -> None:
    # An orphan (every answer lost, nobody came back), a cancellation the ledger never heard
    # of, and a booking with our kind of metadata made around the guard.
    orphan = await lost_answer_booking(harness, "orphaned")
    status, booked = await harness.book(attempt_body(CALL_687, start="2025-10-10T09:00:00Z"))
    assert status == 201
    drifted = booked["appointment"]["booking_uid"]
    harness.simulator.ledger.cancel(drifted, reason="attendee", now=harness.clock.now())
    assert harness.calcom is not None
    rogue = await harness.calcom.create_booking(
        CreateBooking(
            event_type_id=PLAIN,
            start=datetime(2025, 10, 10, 12, 0, tzinfo=UTC),
            attendee_name="Rogue",
            attendee_time_zone="Europe/Berlin",
            attendee_email="rogue@example.com",
            metadata={"call_id": "call_rogue"},
        )
    )

    status, dry = await run_reconcile(harness, dry_run=True)
    assert status == 1
    kinds = {f["booking_uid"]: f["kind"] for f in dry["findings"]}
    assert kinds[orphan] == "orphan_to_cancel"
    assert kinds[drifted] == "status_drift"
    assert kinds[rogue.uid] == "unguarded"
    assert harness.simulator.ledger.get(orphan).status == "accepted"  # a dry run changes nothing

    status, settled = await run_reconcile(harness, dry_run=False)
    assert status == 0
    kinds = {f["booking_uid"]: f["kind"] for f in settled["findings"]}
    assert (kinds[orphan], kinds[drifted]) == ("orphan_cancelled", "status_drift_applied")
    assert harness.simulator.ledger.get(orphan).status == "cancelled"
    row = await harness.pool.fetchrow(
        "SELECT status FROM appointments WHERE booking_uid = $1", drifted
    )
    assert row is not None and row["status"] == "cancelled"

    status, again = await run_reconcile(harness, dry_run=True)
    assert again["counts"].get("orphan_to_cancel", 0) == 0
    assert again["counts"].get("status_drift", 0) == 0
    # The unguarded booking is reported each time: it is not ours to cancel.
    assert again["counts"].get("unguarded") == 1


def test_since_takes_durations_and_rfc_3339_times() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now=now) == now - timedelta(minutes=30)
    assert parse_since("24h", now=now) == now - timedelta(hours=24)
    assert parse_since("7d", now=now) == now - timedelta(days=7)
    assert parse_since("2026-01-01T00:00:00Z", now=now) == datetime(2026, 1, 1, tzinfo=UTC)
    for bad in ("yesterday", "2026-01-01T00:00:00", "5w"):
        with pytest.raises(ValueError, match="--since"):
            parse_since(bad, now=now)


async def test_the_recovery_loop_reconciles_a_window_of_cal_com_now_and_then(
    harness: Harness,
) -> None:
    status, booked = await harness.book(attempt_body(CALL_687, event_type_id=PLAIN))
    assert status == 201
    uid = booked["appointment"]["booking_uid"]
    # Cancelled in Cal.com, and the webhook never came.
    harness.simulator.ledger.cancel(uid, reason="attendee", now=harness.clock.now())
    app = harness.client.app
    loop = RecoveryLoop(
        app[WORKFLOW],
        app[POOL],
        harness.clock,
        interval=60,
        metrics=app[METRICS],
        reconciler=app[RECONCILER],
        reconcile_every=900,
    )

    await loop.run_once()

    row = await harness.pool.fetchrow("SELECT status FROM appointments WHERE booking_uid = $1", uid)
    assert row is not None and row["status"] == "cancelled"
    text = await (await harness.client.get("/metrics")).text()
    assert 'booking_guard_reconcile_drift_total{kind="status_drift_applied"} 1.0' in text
