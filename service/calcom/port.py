"""What the booking workflow needs from Cal.com, independent of how it is reached.

The HTTP client (service/calcom/client.py) and the simulator both satisfy `CalcomClient`.
Cal.com's field names (camelCase) stop here: the rest of the service sees these models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)


class CreateBooking(BaseModel):
    """One create-booking request, in our terms."""

    model_config = ConfigDict(frozen=True)

    event_type_id: int
    start: datetime
    attendee_name: str
    attendee_time_zone: str
    attendee_email: str | None = None
    attendee_phone_number: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    attendee_language: str | None = None
    booking_fields: dict[str, Any] = Field(default_factory=dict)
    length_in_minutes: int | None = None
    guests: tuple[str, ...] = ()
    location: str | None = None

    def to_calcom(self) -> dict[str, Any]:
        """The body of `POST /v2/bookings` (cal-api-version 2024-08-13)."""
        attendee: dict[str, Any] = {"name": self.attendee_name, "timeZone": self.attendee_time_zone}
        if self.attendee_email is not None:
            attendee["email"] = self.attendee_email
        if self.attendee_phone_number is not None:
            attendee["phoneNumber"] = self.attendee_phone_number
        if self.attendee_language is not None:
            attendee["language"] = self.attendee_language
        body: dict[str, Any] = {
            "start": to_calcom_time(self.start),
            "eventTypeId": self.event_type_id,
            "attendee": attendee,
            "metadata": dict(self.metadata),
        }
        # Only what was given: Cal.com fills the event type's defaults for the rest.
        optional = {
            "bookingFieldsResponses": dict(self.booking_fields) or None,
            "lengthInMinutes": self.length_in_minutes,
            "guests": list(self.guests) or None,
            "location": self.location,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body


# Cal.com's uids are short random strings; the same shape as a Cal.com webhook's uid, so that
# what we store can be looked up, logged and passed in a path (no NUL, no 10 KB).
CALCOM_UID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
CalcomUid = Annotated[str, StringConstraints(pattern=CALCOM_UID_PATTERN)]
# bigint in PostgreSQL: the ledger and the appointments table hold Cal.com's ids.
CalcomId = Annotated[int, Field(ge=0, lt=2**63)]


def _utc_representable(value: datetime) -> datetime:
    # An offset near year 1 or 9999 has no UTC instant in Python's calendar.
    try:
        value.astimezone(UTC)
    except OverflowError as e:
        raise ValueError("the time lies outside the years 1 to 9999 in UTC") from e
    return value


# A time without a zone cannot be compared with the attempt's (TypeError, a 500 and an attempt
# stuck in flight): present but unusable is invalid, absent still passes its guard.
CalcomTime = Annotated[AwareDatetime, AfterValidator(_utc_representable)]


class CalcomAttendee(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    name: str | None = None
    email: str | None = None
    time_zone: str | None = Field(None, alias="timeZone")
    phone_number: str | None = Field(None, alias="phoneNumber")


class CalcomBooking(BaseModel):
    """A booking as Cal.com returns it (`data` of the success envelope)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    id: CalcomId | None = None
    uid: CalcomUid
    status: str | None = Field(None, max_length=64)
    start: CalcomTime | None = None
    end: CalcomTime | None = None
    created_at: CalcomTime | None = Field(None, alias="createdAt")
    metadata: dict[str, Any] | None = None
    attendees: list[CalcomAttendee] = Field(default_factory=list)
    event_type_id: CalcomId | None = Field(None, alias="eventTypeId")
    raw: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @classmethod
    def from_calcom(cls, data: dict[str, Any]) -> CalcomBooking:
        """Parse Cal.com's booking object, keeping the whole of it in `raw` for the audit."""
        event_type = data.get("eventType")
        fields = dict(data)
        if "eventTypeId" not in fields and isinstance(event_type, dict):
            fields["eventTypeId"] = event_type.get("id")
        booking = cls.model_validate(fields)
        return booking.model_copy(update={"raw": data})


# The `code` of a CalcomRejected for an answer of an event type booking-guard cannot guard.
UNSUPPORTED_EVENT_TYPE = "unsupported_event_type"


class CalcomError(Exception):
    """Base of Cal.com errors; `message` is Cal.com's own words where it gave any."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        attempts: int = 1,
        earlier_attempt_uncertain: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        # How many HTTP requests the client made for this one call.
        self.attempts = attempts
        # An earlier attempt of this same call timed out, lost its connection or got a 5xx, so
        # it may have written to Cal.com: a "slot taken" answer may then be our own booking, and
        # the workflow must look the booking up before believing it (DESIGN.md section 9).
        self.earlier_attempt_uncertain = earlier_attempt_uncertain
        # Seconds Cal.com asked us to wait (Retry-After), when it said so.
        self.retry_after = retry_after


class CalcomSlotUnavailable(CalcomError):
    """The slot is taken (400 "not available", or the 409 of Cal.com's own race): an outcome."""


class CalcomRejected(CalcomError):
    """Cal.com refused the request (another 4xx): retrying the same request cannot help."""


class CalcomUnavailable(CalcomError):
    """5xx, timeout, dropped connection or 429 after the client's own retries: try later."""


class CalcomInvalidResponse(CalcomUnavailable):
    """A 2xx answer we cannot use: not JSON, no booking, or a field present but unusable.

    Retryable for the producer (the next attempt reconciles first: the create may have
    written), never retried by the client, and always recorded as the attempt's outcome.
    """


class CalcomAuthFailed(CalcomUnavailable):
    """Cal.com refused our API key (401/403): the operator's problem, not the producer's.

    A kind of CalcomUnavailable because the same request books once the key is fixed: the
    idempotency key stays open for the producer's retry.
    """


class CalcomClient(Protocol):
    """The Cal.com operations booking-guard uses."""

    async def create_booking(self, request: CreateBooking) -> CalcomBooking: ...

    async def find_bookings(
        self, *, attendee_email: str, event_type_id: int, start: datetime
    ) -> list[CalcomBooking]: ...

    async def get_booking(self, uid: str) -> CalcomBooking: ...

    async def cancel_booking(self, uid: str, *, reason: str | None = None) -> CalcomBooking: ...

    async def list_bookings(
        self, *, created_after: datetime, created_before: datetime | None = None, take: int = 100
    ) -> list[CalcomBooking]: ...


def to_calcom_time(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds and Z, as Cal.com writes times."""
    if moment.tzinfo is None:
        raise ValueError("Cal.com times must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
