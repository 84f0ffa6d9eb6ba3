"""Properties of the booking workflow against every Cal.com answer: the simulator's scripted
faults and Hypothesis-drawn answer bodies (`sim.add_answer_fault`) for create, find and get."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.calcom.simulator.faults import Operation
from tests.e2e.conftest import MakeHarness
from tests.e2e.properties.driver import TOKEN, Driver, property_settings, seeded
from tests.e2e.properties.strategies import (
    calcom_answers,
    encode,
    valid_bookings,
)

pytestmark = pytest.mark.slow

BOOKINGS = "/v1/booking-attempts"
SCRIPTED = st.sampled_from(
    [
        "500",
        "502",
        "503",
        "429",
        "409",
        "timeout",
        "timeout_after_write",
        "drop",
        "drop_after_write",
        *(
            f"malformed:{m}"
            for m in ("naive_created_at", "empty_uid", "long_uid", "nul_uid", "huge_id")
        ),
    ]
)
OPERATIONS: st.SearchStrategy[Operation] = st.sampled_from(["create", "find", "get"])


@dataclass(frozen=True)
class AnswerFault:
    """One answer Cal.com gives instead of its own, for `sim.add_answer_fault`."""

    raw: bytes
    status: int
    operation: Operation
    # Whether the request took effect behind the answer (a garbled real answer) or not.
    writes: bool


@st.composite
def answer_faults(draw: st.DrawFn, start: str, event_type_id: int) -> AnswerFault:
    status, body = draw(calcom_answers(start, event_type_id))
    # Deeper than any JSON parser recurses: the client must refuse it, not crash.
    raw = body if isinstance(body, bytes) else encode(body, depth=100_000)
    return AnswerFault(raw, status, draw(OPERATIONS), draw(st.booleans()))


@st.composite
def attempts(draw: st.DrawFn) -> tuple[dict[str, Any], list[str | AnswerFault]]:
    """A valid booking, and the faults and answers Cal.com meets it with, in order."""
    body = draw(valid_bookings())
    faults = draw(
        st.lists(
            st.one_of(
                SCRIPTED.map(lambda f: f"{f}@create") | SCRIPTED,
                answer_faults(body["start"], body["event_type_id"]),
            ),
            min_size=1,
            max_size=3,
        )
    )
    return body, faults


async def test_every_calcom_answer_ends_the_attempt_with_a_recorded_outcome(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(api_tokens=[TOKEN], fallback_email="termin@example.com")
    d = Driver(harness, asyncio.get_running_loop())

    @property_settings()
    # Half the attempts in the background (202, then poll): their outcome is recorded all the same.
    @given(attempt=attempts(), background=st.booleans())
    def answered(attempt: tuple[dict[str, Any], list[str | AnswerFault]], background: bool) -> None:
        body, faults = attempt
        harness.simulator.faults.clear()
        for fault in faults:
            if isinstance(fault, str):
                harness.simulator.add_faults(fault)
            else:
                harness.simulator.add_answer_fault(
                    fault.raw, status=fault.status, operation=fault.operation, writes=fault.writes
                )
        before = d.event_count()
        headers = {"Prefer": "respond-async"} if background else {}
        d.judge(d.post(BOOKINGS, encode(body), headers), events_before=before)

    await asyncio.to_thread(seeded(answered))
    assert any(key.endswith((" 502", " 503", " 504")) for key in d.statuses), d.statuses
    assert d.statuses[f"POST {BOOKINGS} 201"] > 0, d.statuses
