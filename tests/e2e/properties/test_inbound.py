"""Properties of every inbound door: the booking API, Retell's function calls and lifecycle
webhooks, Cal.com's webhooks; bodies valid, odd and broken (tests/e2e/properties/strategies.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.api.signatures import calcom_signature, retell_signature
from tests.e2e.conftest import INCIDENT_SLOT, PLAIN, MakeHarness, attempt_body
from tests.e2e.properties.driver import TOKEN, Driver, property_settings, seeded
from tests.e2e.properties.strategies import (
    booking_bodies,
    calcom_answers,
    calcom_webhooks,
    encode,
    not_json,
    retell_calls,
)
from tests.e2e.signed import CALCOM_PATH, CALCOM_SECRET, RETELL_KEY, RETELL_PATH, now_ms

pytestmark = pytest.mark.slow

BOOKINGS = "/v1/booking-attempts"
# Header values aiohttp's client will send (it refuses control characters itself).
header_text = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_categories=["Cc"])
idempotency_keys = (
    st.none() | st.sampled_from(["k-1", "k-2"]) | st.text(header_text, min_size=1, max_size=300)
)
# Other request headers a producer may send, odd values included.
extra_headers = st.fixed_dictionaries(
    {},
    optional={
        "Prefer": st.sampled_from(["respond-async", "respond-async, wait=5", "return=minimal"]),
        "X-Correlation-Id": st.text(header_text, max_size=300),
    },
)


async def driver(make_harness: MakeHarness) -> Driver:
    harness = await make_harness(
        api_tokens=[TOKEN],
        retell_api_key=RETELL_KEY,
        calcom_webhook_secret=CALCOM_SECRET,
        fallback_email="termin@example.com",
    )
    return Driver(harness, asyncio.get_running_loop())


async def test_every_booking_body_is_booked_refused_or_failed_cleanly(
    make_harness: MakeHarness,
) -> None:
    d = await driver(make_harness)

    @property_settings()
    @given(body=booking_bodies | not_json, key=idempotency_keys, extra=extra_headers)
    def booking(body: Any, key: str | None, extra: dict[str, str]) -> None:
        raw = body if isinstance(body, bytes) else encode(body)
        headers = extra if key is None else {**extra, "Idempotency-Key": key}
        before = d.event_count()
        d.judge(d.post(BOOKINGS, raw, headers), events_before=before)

    await asyncio.to_thread(seeded(booking))
    # The drawing reached the workflow, not only the validation.
    assert d.statuses[f"POST {BOOKINGS} 201"] > 0, d.statuses
    assert d.statuses[f"POST {BOOKINGS} 422"] > 0, d.statuses


async def test_every_signed_retell_call_answers_without_leaving_an_attempt_open(
    make_harness: MakeHarness,
) -> None:
    d = await driver(make_harness)

    @property_settings()
    @given(body=retell_calls() | not_json, signed=st.integers(0, 9).map(lambda n: n != 9))
    def retell(body: Any, signed: bool) -> None:
        raw = body if isinstance(body, bytes) else encode(body)
        # Mostly signed, so the bodies reach the handler; sometimes signed for other bytes.
        signature = retell_signature(raw if signed else raw + b" ", RETELL_KEY, now_ms(d.harness))
        before = d.event_count()
        answer = d.post(RETELL_PATH, raw, {"x-retell-signature": signature})
        d.judge(answer, events_before=before)

    await asyncio.to_thread(seeded(retell))
    assert d.statuses[f"POST {RETELL_PATH} 200"] > 0, d.statuses


async def test_every_signed_calcom_webhook_is_recorded_or_refused_cleanly(
    make_harness: MakeHarness,
) -> None:
    d = await driver(make_harness)
    # Bookings Cal.com holds, so that webhooks about them reach the read-back and the ledger.
    uids = []
    for day in (10, 13):
        body = attempt_body(f"call_prop_{day}", event_type_id=PLAIN, start=INCIDENT_SLOT)
        body["start"] = f"2025-10-{day}T06:00:00Z"
        status, answer = await d.harness.book(body, Authorization=f"Bearer {TOKEN}")
        assert status == 201, answer
        uids.append(answer["appointment"]["booking_uid"])

    # Sometimes Cal.com's read-back of the webhook's booking answers oddly too.
    read_backs = st.none() | calcom_answers("2025-10-10T06:00:00.000Z", PLAIN)

    @property_settings()
    @given(
        body=calcom_webhooks(uids) | not_json,
        signed=st.integers(0, 9).map(lambda n: n != 9),
        read_back=read_backs,
    )
    def calcom(body: Any, signed: bool, read_back: tuple[int, Any] | None) -> None:
        d.harness.simulator.faults.clear()
        if read_back is not None:
            status, answer_body = read_back
            raw_answer = answer_body if isinstance(answer_body, bytes) else encode(answer_body)
            d.harness.simulator.add_answer_fault(raw_answer, status=status, operation="get")
        raw = body if isinstance(body, bytes) else encode(body)
        signature = calcom_signature(raw if signed else b"other", CALCOM_SECRET)
        before = d.event_count()
        answer = d.post(CALCOM_PATH, raw, {"X-Cal-Signature-256": signature})
        d.judge(answer, events_before=before)

    await asyncio.to_thread(seeded(calcom))
    assert d.statuses[f"POST {CALCOM_PATH} 200"] > 0, d.statuses
