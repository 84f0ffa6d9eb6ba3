"""The simulated Cal.com's free slots, consistent with its bookings.

Hosts work 09:00-17:00 UTC, Monday to Friday; an event type's slots start every
`length_minutes` from 09:00, end by 17:00, lie in the future and overlap no live booking of
the host (a pending booking holds its time too, as in Cal.com).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from service.calcom.simulator.event_types import SimulatedEventType
from service.calcom.simulator.state import BookingLedger

WORK_START = time(9, 0)
WORK_END = time(17, 0)
WORK_DAYS = frozenset(range(5))  # Monday to Friday
_HOLDING = ("accepted", "pending")


def free_slots(
    ledger: BookingLedger,
    event_type: SimulatedEventType,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[datetime]:
    """Free starts of `event_type` in [start, end], sorted, in UTC."""
    length = timedelta(minutes=event_type.length_minutes)
    busy = [
        (b.start, b.end)
        for b in ledger.bookings.values()
        if b.event_type.host.id == event_type.host.id and b.status in _HOLDING
    ]
    found: list[datetime] = []
    day = start.astimezone(UTC).date()
    while day <= end.astimezone(UTC).date():
        if day.weekday() in WORK_DAYS:
            slot = datetime.combine(day, WORK_START, tzinfo=UTC)
            closing = datetime.combine(day, WORK_END, tzinfo=UTC)
            while slot + length <= closing:
                if (
                    start <= slot <= end
                    and slot >= now
                    and not any(b_start < slot + length and slot < b_end for b_start, b_end in busy)
                ):
                    found.append(slot)
                slot += length
        day += timedelta(days=1)
    return found
