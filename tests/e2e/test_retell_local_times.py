"""A Retell start without an offset that the caller's zone skips or repeats is asked again."""

from __future__ import annotations

import pytest

from service.api.retell_booking import local_time_problem
from tests.e2e.conftest import Harness, MakeHarness
from tests.e2e.signed import RETELL_KEY, post_retell


@pytest.fixture
async def retell(make_harness: MakeHarness) -> Harness:
    return await make_harness(retell_api_key=RETELL_KEY)


def booking_call(start: str, time_zone: str = "Europe/Berlin") -> dict[str, object]:
    return {
        "name": "book_appointment",
        "call": {"call_id": "call_dst", "agent_id": "agent_1"},
        "args": {
            "start": start,
            "time_zone": time_zone,
            "event_type_id": 1002,
            "name": "Hansi Sputer",
            "email": "hansi@example.com",
        },
    }


@pytest.mark.parametrize(
    ("start", "words"),
    [
        ("2026-03-29T02:30:00", "does not exist"),  # Berlin springs forward at 02:00
        ("2025-10-26T02:30:00", "happens twice"),  # and falls back at 03:00
    ],
)
async def test_a_local_time_in_a_gap_or_an_overlap_is_asked_again(
    retell: Harness, start: str, words: str
) -> None:
    response = await post_retell(retell, booking_call(start))
    assert response.status == 200
    answer = await response.json()
    assert answer["result"] == "invalid"
    assert answer["invalid_args"] == ["start"]
    assert words in answer["message"]
    assert "Europe/Berlin" in answer["message"]
    assert await retell.event_count() == 0
    assert len(retell.simulator.requests) == 0


async def test_the_same_wall_time_with_an_offset_books(retell: Harness) -> None:
    answer = await (await post_retell(retell, booking_call("2025-10-26T02:30:00+01:00"))).json()
    assert answer["result"] == "confirmed", answer


@pytest.mark.parametrize(
    ("start", "zone", "problem"),
    [
        ("2026-03-08T02:30:00", "America/New_York", "does not exist"),
        ("2026-11-01T01:30:00", "America/New_York", "happens twice"),
        ("2026-11-01T03:30:00", "America/New_York", None),
        ("2026-03-29T02:30:00", "UTC", None),
        ("2026-03-29T02:30:00", "Asia/Tokyo", None),
        ("2026-03-29T02:30:00+02:00", "Europe/Berlin", None),
    ],
)
def test_gaps_and_overlaps_are_told_apart(start: str, zone: str, problem: str | None) -> None:
    found = local_time_problem(start, zone)
    assert (found is None) if problem is None else (found is not None and problem in found)
