"""Cal.com event types as booking-guard needs to know them: which kinds it can guard.

Read from `GET /v2/event-types/{id}` (cal-api-version 2024-06-14; shared/contracts/README.md,
"Event types"): `seats` is `{"seatsPerTimeSlot", ...}` when seated, else `{"disabled": true}`;
`recurrence` is null (or disabled) or `{"interval", "occurrences", "frequency"}`;
`schedulingType` names team types; `bookingFields` lists the custom fields a create must answer.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

EVENT_TYPES_API_VERSION = "2024-06-14"

UnsupportedKind = Literal["seated", "recurring"]


class CalcomEventType(BaseModel):
    """One event type, reduced to what decides whether and how booking-guard can book it."""

    model_config = ConfigDict(frozen=True)

    id: int
    slug: str | None = None
    length_in_minutes: int | None = None
    seated: bool = False
    recurring: bool = False
    scheduling_type: str | None = None
    # The host confirms each booking: Cal.com holds it `pending` until then.
    requires_confirmation: bool = False
    # Custom booking fields Cal.com requires an answer for (their `slug`s).
    required_fields: tuple[str, ...] = ()

    @property
    def unsupported_kind(self) -> UnsupportedKind | None:
        """Why booking-guard cannot guard this type, or None when it can.

        Seated: every attendee of a time slot shares one booking uid, so a second caller's seat
        looks like a duplicate to the guards (layers 3 and 4). Recurring: one create makes a
        booking per occurrence (`data: [...]`), and the guards judge one booking.
        """
        if self.seated:
            return "seated"
        if self.recurring:
            return "recurring"
        return None

    @classmethod
    def from_calcom(cls, data: dict[str, Any]) -> CalcomEventType:
        """Parse Cal.com's EventTypeOutput_2024_06_14 (unknown fields ignored)."""
        seats = data.get("seats")
        recurrence = data.get("recurrence")
        fields = data.get("bookingFields")
        required = tuple(
            str(f["slug"])
            for f in (fields if isinstance(fields, list) else [])
            if isinstance(f, dict)
            and f.get("required") is True
            and isinstance(f.get("slug"), str)
            # Cal.com's own fields (name, email, ...) are answered from the attendee.
            and not f.get("isDefault", False)
        )
        length = data.get("lengthInMinutes")
        policy = data.get("confirmationPolicy")
        confirmation = (
            isinstance(policy, dict) and bool(policy) and not policy.get("disabled", False)
        ) or data.get("requiresConfirmation") is True
        return cls(
            id=int(data["id"]),
            slug=data.get("slug") if isinstance(data.get("slug"), str) else None,
            length_in_minutes=length if isinstance(length, int) else None,
            seated=isinstance(seats, dict) and not seats.get("disabled", False) and bool(seats),
            recurring=isinstance(recurrence, dict)
            and not recurrence.get("disabled", False)
            and "frequency" in recurrence,
            scheduling_type=data.get("schedulingType")
            if isinstance(data.get("schedulingType"), str)
            else None,
            requires_confirmation=confirmation,
            required_fields=required,
        )


@runtime_checkable
class EventTypeSource(Protocol):
    """Where event types are read from (HttpCalcomClient)."""

    async def get_event_type(self, event_type_id: int) -> CalcomEventType: ...
