"""The event type catalog: kinds refused, cached for a TTL, and a Cal.com that cannot tell."""

from __future__ import annotations

import pytest

from service.booking.event_kinds import EventTypeCatalog, UnsupportedEventType
from service.calcom.event_types import CalcomEventType
from service.calcom.port import CalcomUnavailable


class Source:
    def __init__(self) -> None:
        self.asked: list[int] = []
        self.types = {
            1: CalcomEventType.from_calcom({"id": 1, "seats": {"disabled": True}}),
            2: CalcomEventType.from_calcom({"id": 2, "seats": {"seatsPerTimeSlot": 5}}),
            3: CalcomEventType.from_calcom(
                {"id": 3, "recurrence": {"interval": 1, "occurrences": 4, "frequency": "weekly"}}
            ),
        }

    async def get_event_type(self, event_type_id: int) -> CalcomEventType:
        self.asked.append(event_type_id)
        if event_type_id not in self.types:
            raise CalcomUnavailable("Service Unavailable", status=503)
        return self.types[event_type_id]


async def test_refuses_seated_and_recurring_and_passes_plain() -> None:
    catalog = EventTypeCatalog(Source())
    assert (await catalog.check_supported(1)) is not None
    for event_type_id, kind in ((2, "seated"), (3, "recurring")):
        with pytest.raises(UnsupportedEventType) as raised:
            await catalog.check_supported(event_type_id)
        assert raised.value.kind == kind


async def test_caches_for_the_ttl_then_asks_again() -> None:
    now = [100.0]
    source = Source()
    catalog = EventTypeCatalog(source, ttl_seconds=300, monotonic=lambda: now[0])
    await catalog.get(1)
    now[0] += 299
    await catalog.get(1)
    assert source.asked == [1]
    now[0] += 2
    await catalog.get(1)
    assert source.asked == [1, 1]


async def test_a_calcom_that_cannot_tell_lets_the_booking_go_ahead_and_is_asked_again() -> None:
    source = Source()
    catalog = EventTypeCatalog(source)
    assert await catalog.check_supported(9) is None
    assert await catalog.check_supported(9) is None
    assert source.asked == [9, 9]


def test_disabled_recurrence_and_empty_seats_are_plain() -> None:
    parsed = CalcomEventType.from_calcom(
        {"id": 4, "seats": {"disabled": True}, "recurrence": {"disabled": True}}
    )
    assert parsed.unsupported_kind is None
