"""Free slots as Cal.com lists them: `GET /v2/slots` (cal-api-version 2024-09-04).

The answer groups free starts by date: `{"status": "success", "data": {"2026-12-10":
[{"start": "2026-12-10T09:00:00.000Z"}, ...]}}` (shared/contracts/README.md, "Slots").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

SLOTS_API_VERSION = "2024-09-04"


def slot_starts(body: Any) -> list[datetime] | None:
    """The free starts of a slots answer, sorted and in UTC; None when it is not one."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return None
    starts: set[datetime] = set()
    for day in data.values():
        if not isinstance(day, list):
            return None
        for slot in day:
            text = slot.get("start") if isinstance(slot, dict) else None
            if not isinstance(text, str):
                return None
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            if moment.tzinfo is None:
                return None
            starts.add(moment.astimezone(UTC))
    return sorted(starts)


@runtime_checkable
class SlotSource(Protocol):
    """Where free slots are read from (HttpCalcomClient)."""

    async def find_slots(
        self, *, event_type_id: int, start: datetime, end: datetime, time_zone: str
    ) -> list[datetime]: ...
