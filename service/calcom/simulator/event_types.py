"""The event types the Cal.com simulator knows, and the default set with the incident's kind.

Default ids: 1001 round-robin, returns the existing booking (reproduces the incident); 1002 plain,
a taken slot is a 400; 1003 requires confirmation (bookings are `pending`), returns the existing;
1011 seated and 1012 recurring (weekly), the kinds booking-guard refuses; 1013 plain with a
required custom field `reason`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

EventTypeKind = Literal["returns_existing", "plain"]


@dataclass(frozen=True, slots=True)
class SimulatedHost:
    id: int
    name: str
    username: str
    email: str
    time_zone: str = "Europe/Berlin"

    def to_calcom(self) -> dict[str, Any]:
        """The host as Cal.com lists it in `hosts[]`."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "displayEmail": self.email,
            "username": self.username,
            "timeZone": self.time_zone,
        }


@dataclass(frozen=True, slots=True)
class SimulatedEventType:
    """An event type; `returns_existing` answers a repeated create with the existing booking."""

    id: int
    slug: str
    title: str
    kind: EventTypeKind
    host: SimulatedHost
    length_minutes: int = 30
    requires_confirmation: bool = False
    # Round-robin (team) event types word the taken-slot 400 for "one of the hosts".
    team: bool = False
    # Seated: up to this many attendees per time slot; each create answers a `seatUid`.
    seats_per_time_slot: int | None = None
    # Recurring (weekly): one create books this many occurrences and answers `data: [...]`.
    recurring_occurrences: int | None = None
    # Custom booking fields (their slugs) a create must answer in bookingFieldsResponses.
    required_fields: tuple[str, ...] = ()


# Whose key the simulator's API keys are (`GET /v2/me`): an admin of the team owning every event
# type, the key the go-live guide asks for (it lists every booking of the event types).
SIMULATED_ACCOUNT = SimulatedHost(100, "Simulator Admin", "simulator-admin", "admin@example.com")

INCIDENT_EVENT_TYPE_ID = 1001
PLAIN_EVENT_TYPE_ID = 1002
CONFIRMATION_EVENT_TYPE_ID = 1003
# Kinds booking-guard refuses to book (it cannot guard them): see service/calcom/event_types.py.
SEATED_EVENT_TYPE_ID = 1011
RECURRING_EVENT_TYPE_ID = 1012
# A plain type with a required question of its own ("reason").
INTAKE_EVENT_TYPE_ID = 1013

DEFAULT_EVENT_TYPES = (
    SimulatedEventType(
        INCIDENT_EVENT_TYPE_ID,
        "round-robin-consultation",
        "Round-robin consultation",
        "returns_existing",
        SimulatedHost(101, "Round Robin Host", "rr-host", "rr-host@example.com"),
        team=True,
    ),
    SimulatedEventType(
        PLAIN_EVENT_TYPE_ID,
        "consultation",
        "Consultation",
        "plain",
        SimulatedHost(102, "Plain Host", "plain-host", "plain-host@example.com"),
    ),
    SimulatedEventType(
        CONFIRMATION_EVENT_TYPE_ID,
        "consultation-on-request",
        "Consultation on request",
        "returns_existing",
        SimulatedHost(103, "Confirming Host", "confirming-host", "confirming-host@example.com"),
        requires_confirmation=True,
    ),
    SimulatedEventType(
        SEATED_EVENT_TYPE_ID,
        "group-workshop",
        "Group workshop",
        "plain",
        SimulatedHost(111, "Workshop Host", "workshop-host", "workshop-host@example.com"),
        length_minutes=60,
        seats_per_time_slot=8,
    ),
    SimulatedEventType(
        RECURRING_EVENT_TYPE_ID,
        "weekly-coaching",
        "Weekly coaching",
        "plain",
        SimulatedHost(112, "Coaching Host", "coaching-host", "coaching-host@example.com"),
        recurring_occurrences=4,
    ),
    SimulatedEventType(
        INTAKE_EVENT_TYPE_ID,
        "consultation-with-intake",
        "Consultation with intake",
        "plain",
        SimulatedHost(113, "Intake Host", "intake-host", "intake-host@example.com"),
        required_fields=("reason",),
    ),
)
