"""What the Cal.com simulator accepts, validated the way Cal.com's v2 DTOs validate it.

Messages follow Cal.com's class-validator wording (packages/platform/types/bookings/2024-08-13).
Unknown body fields are dropped silently, as Cal.com's whitelisting pipe does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service.calcom.phones import e164

METADATA_MESSAGE = (
    "Metadata must have at most 50 keys, each key up to 40 characters, "
    "and string values up to 500 characters."
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_BOOKING_STATUSES = ("upcoming", "recurring", "past", "cancelled", "unconfirmed")


class SimulatedError(Exception):
    """An error answer of the simulated Cal.com: status, exception name and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str) -> SimulatedError:
    """Cal.com's 400 for an invalid request."""
    return SimulatedError(400, "BadRequestException", message)


@dataclass(frozen=True, slots=True)
class AttendeeInput:
    name: str
    time_zone: str
    email: str | None
    phone_number: str | None
    language: str


@dataclass(frozen=True, slots=True)
class CreateInput:
    """A validated `POST /v2/bookings` body."""

    start: datetime
    event_type_id: int | None
    event_type_slug: str | None
    attendee: AttendeeInput
    length_in_minutes: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    guests: list[str] = field(default_factory=list)
    location: Any = None
    booking_fields_responses: dict[str, Any] = field(default_factory=dict)


def parse_create(body: Any) -> CreateInput:
    """Validate a create-booking body; raise Cal.com's 400 naming the first bad field."""
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    start = parse_time(body.get("start"), "start must be a valid ISO 8601 date string")
    event_type_id = body.get("eventTypeId")
    slug = body.get("eventTypeSlug")
    if event_type_id is None and not (
        isinstance(slug, str) and (body.get("username") or body.get("teamSlug"))
    ):
        raise bad_request(
            "Either eventTypeId or eventTypeSlug + username or eventTypeSlug + teamSlug "
            "must be provided"
        )
    if event_type_id is not None and (
        not isinstance(event_type_id, int) or isinstance(event_type_id, bool)
    ):
        raise bad_request("eventTypeId must be an integer number")
    length = body.get("lengthInMinutes")
    if length is not None and (
        not isinstance(length, int) or isinstance(length, bool) or length < 1
    ):
        raise bad_request("lengthInMinutes must not be less than 1")
    return CreateInput(
        start=start,
        event_type_id=event_type_id,
        event_type_slug=slug if isinstance(slug, str) else None,
        attendee=_parse_attendee(body.get("attendee")),
        length_in_minutes=length,
        metadata=parse_metadata(body.get("metadata")),
        guests=_parse_guests(body.get("guests")),
        location=body.get("location"),
        booking_fields_responses=_parse_object(body, "bookingFieldsResponses"),
    )


def _parse_attendee(value: Any) -> AttendeeInput:
    if not isinstance(value, dict):
        raise bad_request("attendee must be an object")
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("attendee.name must be a string")
    time_zone = value.get("timeZone")
    if not isinstance(time_zone, str) or not _is_time_zone(time_zone):
        raise bad_request("attendee.timeZone must be a valid IANA time zone")
    email = value.get("email")
    if email is not None and (not isinstance(email, str) or not _EMAIL.match(email)):
        raise bad_request("attendee.email must be an email")
    phone = value.get("phoneNumber")
    # libphonenumber's isValidPhoneNumber, as Cal.com checks it: a number of the right shape
    # that exists nowhere (`+266696687`) is refused too (shared/contracts/README.md).
    if phone is not None and (not isinstance(phone, str) or e164(phone) is None):
        raise bad_request("attendee.phoneNumber must be a valid phone number")
    if email is None and phone is None:
        raise bad_request("Either attendee.email or attendee.phoneNumber must be provided")
    language = value.get("language", "en")
    if not isinstance(language, str):
        raise bad_request("attendee.language must be a string")
    return AttendeeInput(name, time_zone, email, phone, language)


def parse_metadata(value: Any) -> dict[str, str]:
    """Cal.com's metadata rule: at most 50 keys of at most 40 characters, string values <= 500."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 50:
        raise bad_request(METADATA_MESSAGE)
    for key, item in value.items():
        if len(key) > 40 or not isinstance(item, str) or len(item) > 500:
            raise bad_request(METADATA_MESSAGE)
    return dict(value)


def _parse_guests(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(g, str) and _EMAIL.match(g) for g in value
    ):
        raise bad_request("each value in guests must be an email")
    return list(value)


def _parse_object(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{name} must be an object")
    return dict(value)


def parse_time(value: Any, message: str) -> datetime:
    """An ISO 8601 time as UTC; a time without offset counts as UTC, as Cal.com reads it."""
    if not isinstance(value, str):
        raise bad_request(message)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise bad_request(message) from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class FindInput:
    """The filters of `GET /v2/bookings` the simulator understands."""

    statuses: tuple[str, ...] = ()
    attendee_email: str | None = None
    attendee_name: str | None = None
    booking_uid: str | None = None
    event_type_ids: tuple[int, ...] = ()
    after_start: datetime | None = None
    before_end: datetime | None = None
    after_created_at: datetime | None = None
    before_created_at: datetime | None = None
    sort: tuple[str, str] = ("start", "asc")
    take: int = 100
    skip: int = 0


def parse_find(query: Mapping[str, str]) -> FindInput:
    """Validate the query of `GET /v2/bookings` like GetBookingsInput_2024_08_13."""
    statuses = tuple(s.strip() for s in query.get("status", "").split(",") if s.strip())
    if any(s not in _BOOKING_STATUSES for s in statuses):
        raise bad_request(
            "Invalid status. Allowed are upcoming, recurring, past, cancelled, unconfirmed"
        )
    ids = [query[k] for k in ("eventTypeId", "eventTypeIds") if k in query]
    try:
        event_type_ids = tuple(int(i) for part in ids for i in part.split(",") if i.strip())
    except ValueError as e:
        raise bad_request("eventTypeId must be an integer number") from e
    email = query.get("attendeeEmail")
    times = {
        name: parse_time(query[name], f"{name} must be a valid ISO 8601 date.")
        for name in ("afterStart", "beforeEnd", "afterCreatedAt", "beforeCreatedAt")
        if name in query
    }
    sort = ("start", "asc")
    for param, key in (("sortStart", "start"), ("sortEnd", "end"), ("sortCreated", "created")):
        if param in query:
            if query[param] not in ("asc", "desc"):
                raise bad_request(f'{param} must be either "asc" or "desc".')
            sort = (key, query[param])
    return FindInput(
        statuses=statuses,
        # Cal.com turns inner spaces back into "+": an unencoded "+" arrives as a space.
        attendee_email=re.sub(r"\s+", "+", email.strip()) if email is not None else None,
        attendee_name=query.get("attendeeName"),
        booking_uid=query.get("bookingUid"),
        event_type_ids=event_type_ids,
        after_start=times.get("afterStart"),
        before_end=times.get("beforeEnd"),
        after_created_at=times.get("afterCreatedAt"),
        before_created_at=times.get("beforeCreatedAt"),
        sort=sort,
        take=_bounded_int(query, "take", 100, 1, 250),
        skip=_bounded_int(query, "skip", 0, 0, None),
    )


def _bounded_int(
    query: Mapping[str, str], name: str, default: int, low: int, high: int | None
) -> int:
    if name not in query:
        return default
    try:
        value = int(query[name])
    except ValueError as e:
        raise bad_request(f"{name} must be a number conforming to the specified constraints") from e
    if value < low or (high is not None and value > high):
        raise bad_request(f"{name} must be a number conforming to the specified constraints")
    return value
