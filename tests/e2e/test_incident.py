"""The incident of DESIGN.md §1, replayed over HTTP against the simulator."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import wait_until
from tests.e2e.conftest import CALL_687, CALL_688, Harness, MakeHarness, attempt_body


async def test_call_688_is_refused_call_687s_35_minute_old_booking(harness: Harness) -> None:
    status, first = await harness.book(attempt_body(CALL_687, name="Hansi Sputer"))
    assert status == 201, first
    assert first["status"] == "confirmed"
    booking_uid = first["appointment"]["booking_uid"]

    harness.clock.advance(timedelta(minutes=35))
    status, second = await harness.book(attempt_body(CALL_688, name="Hans Schuster"))

    assert status == 409, second
    assert second["status"] == "rejected"
    assert second["guard"] == "freshness"
    assert second["reason"] == "stale_booking"
    reasons = [f["reason"] for f in second["detail"]["failures"]]
    assert reasons == ["stale_booking", "call_id_mismatch", "duplicate_booking"]

    # Cal.com really did hand call 688 call 687's booking: that is what the guards caught.
    assert len(harness.simulator.ledger.bookings) == 1
    listing = await (await harness.client.get("/v1/appointments")).json()
    assert [a["booking_uid"] for a in listing["appointments"]] == [booking_uid]
    assert listing["appointments"][0]["call_id"] == CALL_687
    assert await harness.appointment_count() == 1


async def test_every_step_of_both_calls_is_in_the_ledger(harness: Harness) -> None:
    await harness.book(attempt_body(CALL_687))
    harness.clock.advance(timedelta(minutes=35))
    await harness.book(attempt_body(CALL_688, name="Hans Schuster"))
    assert await harness.event_types() == [
        "BookingRequested",
        "CalcomBookingReceived",
        "BookingConfirmed",
        "BookingRequested",
        "CalcomBookingReceived",
        "BookingRejected",
    ]


async def test_fallback_email_is_plus_addressed_per_call_so_calcom_never_dedups(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(fallback_email="termin@example.com")
    status, first = await h.book(attempt_body(CALL_687, email=None))
    assert status == 201, first
    h.clock.advance(timedelta(minutes=35))
    status, second = await h.book(attempt_body(CALL_688, email=None, name="Hans Schuster"))
    # Layer 0: different attendee addresses, so Cal.com does not return call 687's booking;
    # the slot is taken for the host, and the round-robin type has no second host.
    assert status == 409, second
    sent = [
        r.body["attendee"]["email"]
        for r in h.simulator.requests
        if r.method == "POST" and r.path == "/v2/bookings"
    ]
    assert sent == [f"termin+{CALL_687}@example.com", f"termin+{CALL_688}@example.com"]
    assert second["reason"] == "slot_unavailable"
    assert second["guard"] == "calcom"


async def test_the_audit_shows_both_calls_on_the_booking(harness: Harness) -> None:
    _, first = await harness.book(attempt_body(CALL_687))
    harness.clock.advance(timedelta(minutes=35))
    await harness.book(attempt_body(CALL_688, name="Hans Schuster"))
    uid = first["appointment"]["booking_uid"]

    history = await (await harness.client.get(f"/v1/calcom-bookings/{uid}/events")).json()
    by_call = [(e["data"]["call_id"], e["type"]) for e in history["events"]]
    assert (CALL_687, "BookingConfirmed") in by_call
    assert (CALL_688, "BookingRejected") in by_call

    timeline = await (await harness.client.get(f"/v1/calls/{CALL_688}/events")).json()
    assert [e["type"] for e in timeline["events"]] == [
        "BookingRequested",
        "CalcomBookingReceived",
        "BookingRejected",
    ]

    async def rejection_projected() -> list[dict[str, object]]:
        response = await harness.client.get(
            "/v1/rejections", params={"from": "2025-10-01T00:00:00Z", "to": "2025-10-31T00:00:00Z"}
        )
        body: dict[str, list[dict[str, object]]] = await response.json()
        return body["counts"]

    counts = await wait_until(rejection_projected)
    assert counts == [{"guard": "freshness", "reason": "stale_booking", "count": 1}]
