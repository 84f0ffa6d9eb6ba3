"""What the agent is told: true sentences, times in the caller's zone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from service.api.retell_booking import spoken
from service.api.retell_speech import say_times
from service.booking.models import AttemptOutcome

FRIDAY = datetime(2025, 10, 10, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("calcom_rate_limited", "busy"),
        ("calcom_auth_failed", "cannot take bookings"),
        ("calcom_timeout", "did not answer in time"),
    ],
)
def test_a_retryable_failure_says_what_happened(reason: str, words: str) -> None:
    outcome = AttemptOutcome(
        attempt_id=uuid.uuid4(), status="failed", reason=reason, retryable=True
    )
    answer = spoken(outcome, "Europe/Berlin")
    assert answer["result"] == "try_again"
    assert words in answer["message"]


def test_times_name_the_day_only_when_it_differs() -> None:
    thursday = datetime(2025, 10, 9, 15, 30, tzinfo=UTC)
    said = say_times([FRIDAY, thursday], "Europe/Berlin", on=FRIDAY.date())
    assert said == "12:00 or Thursday 9 October at 17:30"
