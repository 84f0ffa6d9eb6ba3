"""Another time to offer: free slots near the one that was refused, from Cal.com.

Looked up when an answer is given, never stored with the idempotency key's answer: a slot free
at the first answer may be gone at the replay, so a replay looks again (DESIGN.md §10).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from service.booking.clock import Clock
from service.calcom.port import CalcomError
from service.calcom.slots import SlotSource

log = logging.getLogger(__name__)

MAX_ALTERNATIVES = 3
NEAR = timedelta(days=3)
MAX_SLOT_RANGE = timedelta(days=31)


class SlotFinder:
    """Free slots of an event type; `source` None (a Cal.com without slots) finds none."""

    def __init__(self, source: SlotSource | None, clock: Clock) -> None:
        self._source = source
        self._clock = clock

    async def free(
        self, event_type_id: int, *, start: datetime, end: datetime, time_zone: str = "UTC"
    ) -> list[datetime]:
        """Free future starts in [start, end], sorted; raises CalcomError when Cal.com fails."""
        if self._source is None:
            return []
        now = self._clock.now()
        slots = await self._source.find_slots(
            event_type_id=event_type_id, start=max(start, now), end=end, time_zone=time_zone
        )
        return sorted(s for s in slots if start <= s <= end and s > now)

    async def alternatives(
        self, event_type_id: int, wanted: datetime, *, limit: int = MAX_ALTERNATIVES
    ) -> list[datetime]:
        """Up to `limit` free slots nearest `wanted` within three days either side, earlier
        first on ties; [] when there are none or Cal.com cannot say (a refusal still stands)."""
        try:
            free = await self.free(event_type_id, start=wanted - NEAR, end=wanted + NEAR)
        except CalcomError as e:
            log.warning("no alternatives for event type %s: %s", event_type_id, e.message)
            return []
        nearest = sorted((s for s in free if s != wanted), key=lambda s: (abs(s - wanted), s))
        return nearest[:limit]
