"""Timeline notes are words a person reads in an incident, never Python reprs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from projections.timeline import readable_detail, utc_ms


def test_times_are_utc_to_the_millisecond() -> None:
    berlin = timezone(timedelta(hours=1))
    moment = datetime(2025, 3, 1, 10, 10, 0, 123456, tzinfo=berlin)
    assert utc_ms(moment) == "2025-03-01 09:10:00.123Z"
    assert utc_ms(datetime(2025, 3, 1, tzinfo=UTC)) == "2025-03-01 00:00:00.000Z"


def test_a_freshness_rejection_reads_as_a_sentence() -> None:
    detail = {
        "created_at": "2025-03-01T09:10:00+00:00",
        "first_called_at": "2025-03-01T10:45:00.5+01:00",
        "age_seconds": 2100.5,
        "max_age_seconds": 30.0,
    }
    assert readable_detail(detail) == (
        "created at 2025-03-01 09:10:00.000Z, first called at 2025-03-01 09:45:00.500Z,"
        " age 2100.5 s, max age 30 s"
    )


def test_nested_and_empty_values_have_no_python_syntax() -> None:
    detail = {"existing": {"call_id": "687", "held": True}, "notes": ["a", None], "uid": "T-1"}
    text = readable_detail(detail)
    assert text == "existing call_id 687, held yes, notes a, -, uid T-1"
    assert not set("{}[]'") & set(text)
