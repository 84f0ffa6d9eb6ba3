"""The simulated Cal.com's event types as `GET /v2/event-types/{id}` shows them.

Cal.com's EventTypeOutput_2024_06_14, trimmed to what a client decides by
(shared/contracts/README.md, "Event types"): `seats` is `{"disabled": true}` unless seated,
`recurrence` is null unless recurring, team types name their `schedulingType`.
"""

from __future__ import annotations

from typing import Any

from service.calcom.simulator.event_types import SimulatedEventType, SimulatedHost

EVENT_TYPES_API_VERSION = "2024-06-14"

# The booking fields every event type has (Cal.com's defaults, answered from the attendee).
_DEFAULT_FIELDS = (
    {"type": "name", "slug": "name", "required": True, "isDefault": True},
    {"type": "email", "slug": "email", "required": True, "isDefault": True},
)


def event_type_output(event_type: SimulatedEventType) -> dict[str, Any]:
    """The event type in Cal.com's 2024-06-14 shape."""
    seats: dict[str, Any] = (
        {
            "seatsPerTimeSlot": event_type.seats_per_time_slot,
            "showAttendeeInfo": False,
            "showAvailabilityCount": True,
        }
        if event_type.seats_per_time_slot
        else {"disabled": True}
    )
    recurrence = (
        {"interval": 1, "occurrences": event_type.recurring_occurrences, "frequency": "weekly"}
        if event_type.recurring_occurrences
        else None
    )
    output: dict[str, Any] = {
        "id": event_type.id,
        "slug": event_type.slug,
        "title": event_type.title,
        "lengthInMinutes": event_type.length_minutes,
        "seats": seats,
        "recurrence": recurrence,
        "bookingFields": [*_DEFAULT_FIELDS, *custom_fields(event_type)],
        "confirmationPolicy": {"type": "always", "blockUnconfirmedBookingsInBooker": True}
        if event_type.requires_confirmation
        else {"disabled": True},
        "hosts": [event_type.host.to_calcom()],
    }
    if event_type.team:
        output["schedulingType"] = "roundRobin"
    return output


def custom_fields(event_type: SimulatedEventType) -> list[dict[str, Any]]:
    """The event type's own required booking fields, as Cal.com lists them."""
    return [
        {"type": "textarea", "slug": slug, "label": slug.capitalize(), "required": True}
        for slug in event_type.required_fields
    ]


def me_output(account: SimulatedHost) -> dict[str, Any]:
    """`GET /v2/me`'s `data`: the key's user in Cal.com's MeOutput shape."""
    return {
        "id": account.id,
        "username": account.username,
        "email": account.email,
        "name": account.name,
        "avatarUrl": None,
        "bio": None,
        "timeFormat": 24,
        "defaultScheduleId": 1,
        "weekStart": "Monday",
        "timeZone": account.time_zone,
        "locale": "en",
        "organizationId": None,
        "organization": None,
    }
