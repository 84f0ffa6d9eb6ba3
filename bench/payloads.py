"""The event every write benchmark appends: a realistic BookingRequested, the same for all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from events.booking import Attendee, BookingRequested
from events.models import EventMetadata, NewEvent

EVENT = BookingRequested(
    attempt_id=uuid.UUID("8d3c8f7e-2b1a-4c55-9f0e-1a2b3c4d5e6f"),
    call_id="call_0123456789abcdef0123456789",
    event_type_id=1234567,
    start=datetime(2025, 12, 1, 10, 0, tzinfo=UTC),
    attendee=Attendee(
        name="Ada Lovelace",
        email="ada.lovelace@example.com",
        time_zone="Europe/London",
        phone_number="+441234567890",
    ),
    metadata={"agent": "retell", "campaign": "winter-checkups"},
    idempotency_key="idem-0123456789abcdef",
    fingerprint="3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e",
    requested_at=datetime(2025, 11, 24, 9, 59, 58, tzinfo=UTC),
)
METADATA = EventMetadata(correlation_id="call_0123456789abcdef0123456789", producer="bench")

TYPE = BookingRequested.type_name
SCHEMA_VERSION = BookingRequested.schema_version
DATA = EVENT.__pydantic_serializer__.to_json(EVENT).decode()  # what the store writes to `data`
METADATA_JSON = METADATA.model_dump_json(exclude_none=True)


def new_events(count: int) -> list[NewEvent]:
    """`count` appendable events, each with a fresh event id."""
    return [NewEvent(EVENT, metadata=METADATA) for _ in range(count)]
