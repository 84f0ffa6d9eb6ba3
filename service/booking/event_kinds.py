"""Event types booking-guard cannot guard are refused before anything is recorded or booked.

The kind comes from Cal.com (`GET /v2/event-types/{id}`), cached per process for a while: an
operator who turns seats on shows up within the TTL, and the common path asks Cal.com once per
event type per TTL, not once per booking.

Refused before the intent, not recorded as a BookingRejected: the kind is a property of the
request, like an unknown field, and no attempt was made. Recording it would finish an
idempotency key on an answer that stops being true the moment the operator changes the event
type, and count a configuration problem among the guard's rejections.

When Cal.com cannot tell us (timeout, 5xx, an unknown id) the booking goes ahead: the create
itself then fails the same way, as an attempt in the ledger, and a recurring type's answer
(`data: [...]`) is still refused there, never retried (service/calcom/client.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from service.booking.attempt import BookingInputError
from service.calcom.event_types import CalcomEventType, EventTypeSource, UnsupportedKind
from service.calcom.port import CalcomError

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 300.0


class UnsupportedEventType(Exception):
    """The event type is of a kind booking-guard cannot guard (seated, recurring)."""

    def __init__(self, event_type_id: int, kind: UnsupportedKind) -> None:
        super().__init__(
            f"event type {event_type_id} is {kind}: booking-guard books single, unseated "
            "events only"
        )
        self.event_type_id = event_type_id
        self.kind = kind


@dataclass(frozen=True, slots=True)
class _Entry:
    expires: float
    event_type: CalcomEventType


class EventTypeCatalog:
    """Event types by id, read from Cal.com and kept for `ttl_seconds` in this process."""

    def __init__(
        self,
        source: EventTypeSource,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._entries: dict[int, _Entry] = {}

    async def get(self, event_type_id: int) -> CalcomEventType | None:
        """The event type, or None when Cal.com cannot say now (not cached: asked again)."""
        now = self._monotonic()
        entry = self._entries.get(event_type_id)
        if entry is not None and entry.expires > now:
            return entry.event_type
        try:
            event_type = await self._source.get_event_type(event_type_id)
        except CalcomError as e:
            log.warning(
                "event type %s could not be read from Cal.com (%s); booking without its kind",
                event_type_id,
                e.message,
            )
            return None
        self._entries[event_type_id] = _Entry(now + self._ttl, event_type)
        return event_type

    async def check_supported(self, event_type_id: int) -> CalcomEventType | None:
        """Raise UnsupportedEventType for a kind booking-guard cannot guard; else the type."""
        event_type = await self.get(event_type_id)
        if event_type is not None and event_type.unsupported_kind is not None:
            raise UnsupportedEventType(event_type_id, event_type.unsupported_kind)
        return event_type

    async def check_bookable(self, event_type_id: int, answered: Collection[str]) -> None:
        """check_supported, and every custom field the type requires answered.

        Cal.com refuses a create missing a required field with a 400; asking first makes it a
        refusal of the producer's field, before an attempt is recorded.
        """
        event_type = await self.check_supported(event_type_id)
        for slug in event_type.required_fields if event_type is not None else ():
            if slug not in answered:
                raise BookingInputError(
                    f"booking_fields.{slug}", f"is required by event type {event_type_id}"
                )
