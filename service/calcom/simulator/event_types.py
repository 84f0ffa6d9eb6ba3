"""The event types the Cal.com simulator knows, and the default set with the incident's kind.

Default ids: 1001 round-robin, returns the existing booking (reproduces the incident); 1002 plain,
a taken slot is a 400; 1003 requires confirmation (bookings are `pending`), returns the existing.
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


INCIDENT_EVENT_TYPE_ID = 1001
PLAIN_EVENT_TYPE_ID = 1002
CONFIRMATION_EVENT_TYPE_ID = 1003

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
)
