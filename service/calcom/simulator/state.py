"""The simulated Cal.com's bookings and event types, and the rules Cal.com books by.

Every operation here is synchronous on purpose: with no `await` between the check for a taken
slot and the write, one event loop serialises concurrent creates, so fifty requests for one slot
make exactly one booking, as Cal.com's unique key does.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from service.calcom.port import to_calcom_time
from service.calcom.simulator.event_types import DEFAULT_EVENT_TYPES, SimulatedEventType
from service.calcom.simulator.input import (
    CreateInput,
    FindInput,
    SimulatedError,
    bad_request,
    parse_time,
)

_UID_ALPHABET = string.ascii_letters + string.digits
_LIVE = ("accepted", "pending")


@dataclass(slots=True)
class SimulatedBooking:
    """One booking as the simulator stores it."""

    id: int
    uid: str
    event_type: SimulatedEventType
    start: datetime
    end: datetime
    status: str
    attendee: dict[str, Any]
    created_at: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    guests: list[str] = field(default_factory=list)
    location: Any = None
    responses: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None
    cancellation_reason: str | None = None
    rescheduling_reason: str | None = None
    rescheduled_from_uid: str | None = None
    rescheduled_to_uid: str | None = None
    # Who cancelled (Cal.com's cancelledByEmail): the host's key through the API, or the attendee.
    cancelled_by: str | None = None
    rejection_reason: str | None = None

    def to_calcom(self) -> dict[str, Any]:
        """The booking in Cal.com's BookingOutput_2024_08_13 shape."""
        event_type = self.event_type
        data: dict[str, Any] = {
            "id": self.id,
            "uid": self.uid,
            "title": f"{event_type.title} between {event_type.host.name} and "
            f"{self.attendee['name']}",
            "description": "",
            "hosts": [event_type.host.to_calcom()],
            "status": self.status,
            "start": to_calcom_time(self.start),
            "end": to_calcom_time(self.end),
            "duration": int((self.end - self.start).total_seconds() // 60),
            "eventTypeId": event_type.id,
            "eventType": {"id": event_type.id, "slug": event_type.slug},
            "meetingUrl": f"https://app.cal.com/video/{self.uid}",
            "location": self.location
            if isinstance(self.location, str)
            else f"https://app.cal.com/video/{self.uid}",
            "absentHost": False,
            "createdAt": to_calcom_time(self.created_at),
            "updatedAt": None if self.updated_at is None else to_calcom_time(self.updated_at),
            "metadata": dict(self.metadata),
            "attendees": [dict(self.attendee)],
            "guests": list(self.guests),
            "bookingFieldsResponses": dict(self.responses),
        }
        optional = {
            "cancellationReason": self.cancellation_reason,
            "reschedulingReason": self.rescheduling_reason,
            "rescheduledFromUid": self.rescheduled_from_uid,
            "rescheduledToUid": self.rescheduled_to_uid,
            "cancelledByEmail": self.cancelled_by,
            # Cal.com marks the booking a reschedule replaced; absent on every other booking.
            "rescheduled": True if self.rescheduled_to_uid is not None else None,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        return data


class BookingLedger:
    """Bookings in memory, by uid, with Cal.com's rules for creating, finding and cancelling."""

    def __init__(
        self, event_types: Iterable[SimulatedEventType] = DEFAULT_EVENT_TYPES, *, first_id: int = 1
    ) -> None:
        self.event_types = {event_type.id: event_type for event_type in event_types}
        self._first_id = first_id
        self._next_id = first_id
        self.bookings: dict[str, SimulatedBooking] = {}

    def reset(self) -> None:
        """Forget every booking."""
        self.bookings.clear()
        self._next_id = self._first_id

    def create(
        self, request: CreateInput, *, now: datetime, reject_past: bool = True
    ) -> tuple[SimulatedBooking, bool]:
        """Book, or return the booking Cal.com's shortcut returns; (booking, created)."""
        event_type = self._event_type(request)
        length = request.length_in_minutes or event_type.length_minutes
        end = request.start + timedelta(minutes=length)
        attendee = _attendee(request)
        if event_type.kind == "returns_existing":
            existing = self._same_attendee_booking(event_type, request.start, attendee)
            if existing is not None:
                return existing, False  # the incident: old uid, createdAt, metadata; no write
        self._check_bookable(event_type, request.start, end, now=now, reject_past=reject_past)
        booking = SimulatedBooking(
            id=self._take_id(),
            uid=_new_uid(),
            event_type=event_type,
            start=request.start,
            end=end,
            status="pending" if event_type.requires_confirmation else "accepted",
            attendee=attendee,
            created_at=now,
            metadata=dict(request.metadata),
            guests=list(request.guests),
            location=request.location,
            responses=_responses(request, attendee),
        )
        self.bookings[booking.uid] = booking
        return booking, True

    def get(self, uid: str) -> SimulatedBooking:
        """The booking with this uid, or Cal.com's 404."""
        booking = self.bookings.get(uid)
        if booking is None:
            raise SimulatedError(
                404, "NotFoundException", f"Booking with uid={uid} was not found in the database"
            )
        return booking

    def cancel(
        self, uid: str, *, reason: str | None, now: datetime, by: str | None = None
    ) -> SimulatedBooking:
        """Cancel a booking, freeing its slot."""
        booking = self.get(uid)
        # handleCancelBooking.ts refuses only CANCELLED (a reschedule's old booking too): a
        # rejected booking can still be cancelled.
        if booking.status == "cancelled":
            raise bad_request("This booking has already been cancelled.")
        booking.status = "cancelled"
        booking.cancellation_reason = reason
        booking.cancelled_by = by
        booking.updated_at = now
        return booking

    def accept(self, uid: str, *, now: datetime) -> SimulatedBooking:
        """The host confirms a pending booking."""
        booking = self._pending(uid, "accepted")
        booking.status = "accepted"
        booking.updated_at = now
        return booking

    def decline(self, uid: str, *, reason: str | None, now: datetime) -> SimulatedBooking:
        """The host rejects a pending booking, freeing its slot."""
        booking = self._pending(uid, "declined")
        booking.status = "rejected"
        booking.rejection_reason = reason
        booking.updated_at = now
        return booking

    def _pending(self, uid: str, verb: str) -> SimulatedBooking:
        booking = self.get(uid)
        if booking.status != "pending":
            raise SimulatedError(
                409,
                "ConflictException",
                f"Booking {uid} is {booking.status}: only a pending booking can be {verb}",
            )
        return booking

    def reschedule(
        self,
        uid: str,
        body: dict[str, Any],
        *,
        now: datetime,
        reject_past: bool = True,
    ) -> SimulatedBooking:
        """Move a booking: a new booking with a new uid; the old one is cancelled."""
        old = self.get(uid)
        if old.status not in _LIVE:
            raise bad_request(f"Booking with uid={uid} is {old.status} and cannot be rescheduled")
        start = parse_time(body.get("start"), "start must be a valid ISO 8601 date string")
        end = start + (old.end - old.start)
        others = {old.uid}
        self._check_bookable(
            old.event_type, start, end, now=now, reject_past=reject_past, skip=others
        )
        new = replace(
            old,
            id=self._take_id(),
            uid=_new_uid(),
            start=start,
            end=end,
            created_at=now,
            updated_at=None,
            rescheduling_reason=_optional_text(body.get("reschedulingReason")),
            rescheduled_from_uid=old.uid,
            metadata=dict(old.metadata),
        )
        old.status = "cancelled"
        old.rescheduled_to_uid = new.uid
        old.updated_at = now
        self.bookings[new.uid] = new
        return new

    def find(self, query: FindInput, *, now: datetime) -> tuple[list[SimulatedBooking], int]:
        """One page of the bookings matching `query`, and how many match in all."""
        matches = [b for b in self.bookings.values() if _matches(b, query, now)]
        key, direction = query.sort
        attribute = {"start": "start", "end": "end", "created": "created_at"}[key]
        matches.sort(key=lambda b: (getattr(b, attribute), b.id), reverse=direction == "desc")
        return matches[query.skip : query.skip + query.take], len(matches)

    def _event_type(self, request: CreateInput) -> SimulatedEventType:
        if request.event_type_id is not None:
            found = self.event_types.get(request.event_type_id)
            name = f"id {request.event_type_id}"
        else:
            slug = request.event_type_slug
            found = next((e for e in self.event_types.values() if e.slug == slug), None)
            name = f"slug {slug}"
        if found is None:
            raise SimulatedError(404, "NotFoundException", f"Event type with {name} not found.")
        return found

    def _same_attendee_booking(
        self, event_type: SimulatedEventType, start: datetime, attendee: dict[str, Any]
    ) -> SimulatedBooking | None:
        for booking in self.bookings.values():
            if (
                booking.event_type.id == event_type.id
                and booking.start == start
                and booking.status in _LIVE
                and booking.attendee["email"].lower() == attendee["email"].lower()
                and (
                    "phoneNumber" not in attendee
                    or booking.attendee.get("phoneNumber") == attendee["phoneNumber"]
                )
            ):
                return booking
        return None

    def _check_bookable(
        self,
        event_type: SimulatedEventType,
        start: datetime,
        end: datetime,
        *,
        now: datetime,
        reject_past: bool,
        skip: set[str] | None = None,
    ) -> None:
        if reject_past and start < now:
            raise bad_request("Attempting to book a meeting in the past.")
        for booking in self.bookings.values():
            if (
                booking.event_type.host.id == event_type.host.id
                and booking.status in _LIVE
                and booking.start < end
                and start < booking.end
                and booking.uid not in (skip or set())
            ):
                who = "One of the hosts" if event_type.team else "User"
                raise bad_request(
                    f"{who} either already has booking at this time or is not available"
                )

    def _take_id(self) -> int:
        booking_id = self._next_id
        self._next_id += 1
        return booking_id


def _attendee(request: CreateInput) -> dict[str, Any]:
    """The attendee as Cal.com stores it; a phone-only attendee gets Cal.com's faux address."""
    given = request.attendee
    email = given.email
    if email is None:
        email = re.sub(r"\D", "", given.phone_number or "") + "@sms.cal.com"
    attendee: dict[str, Any] = {
        "name": given.name,
        "email": email,
        "displayEmail": email,
        "timeZone": given.time_zone,
        "language": given.language,
        "absent": False,
    }
    if given.phone_number is not None:
        attendee["phoneNumber"] = given.phone_number
    return attendee


def _responses(request: CreateInput, attendee: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {"name": attendee["name"], "email": attendee["email"]}
    if "phoneNumber" in attendee:
        responses["attendeePhoneNumber"] = attendee["phoneNumber"]
    if request.guests:
        responses["guests"] = list(request.guests)
    responses.update(request.booking_fields_responses)
    return responses


def _matches(booking: SimulatedBooking, query: FindInput, now: datetime) -> bool:
    email = query.attendee_email
    checks = (
        not query.statuses or any(_has_status(booking, s, now) for s in query.statuses),
        email is None or booking.attendee["email"].lower() == email.lower(),
        query.attendee_name is None or booking.attendee["name"] == query.attendee_name,
        query.booking_uid is None or booking.uid == query.booking_uid,
        not query.event_type_ids or booking.event_type.id in query.event_type_ids,
        query.after_start is None or booking.start >= query.after_start,
        query.before_end is None or booking.end <= query.before_end,
        query.after_created_at is None or booking.created_at >= query.after_created_at,
        query.before_created_at is None or booking.created_at <= query.before_created_at,
    )
    return all(checks)


def _has_status(booking: SimulatedBooking, status: str, now: datetime) -> bool:
    """Cal.com's list statuses: upcoming, past, cancelled, unconfirmed (recurring: none here)."""
    live = booking.status in _LIVE
    return {
        "upcoming": live and booking.end >= now,
        "past": live and booking.end < now,
        "cancelled": booking.status in ("cancelled", "rejected"),
        "unconfirmed": booking.status == "pending" and booking.end >= now,
        "recurring": False,
    }[status]


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request("reschedulingReason must be a string")
    return value


def _new_uid() -> str:
    """A 22-character base62 uid like Cal.com's short UUIDs."""
    return "".join(secrets.choice(_UID_ALPHABET) for _ in range(22))
