"""The booking API's request and outcome models (pydantic at the edge)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from service.booking.field_types import PositiveId
from service.booking.instants import Instant
from service.calcom.phones import MAX_PHONE_TEXT, e164

# Cal.com allows 50 metadata keys; booking-guard adds call_id and attempt_id.
MAX_METADATA_KEYS = 48
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$"
PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"
RESERVED_METADATA = frozenset({"call_id", "attempt_id"})
FINGERPRINT_V2 = "v2:"


def _known_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown IANA time zone {value!r}") from e
    return value


def _phone(value: str) -> str:
    # Checked as Cal.com checks it (service/calcom/phones.py) and sent in E.164.
    normalised = e164(value)
    if normalised is None:
        raise ValueError("is not a valid phone number in international form (+<country><number>)")
    return normalised


def _calcom_metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"at most {MAX_METADATA_KEYS} metadata keys")
    for key, item in value.items():
        if not key or len(key) > 40:
            raise ValueError(f"metadata key {key[:50]!r} must be 1 to 40 characters")
        if key in RESERVED_METADATA:
            raise ValueError(f"metadata key {key!r} is set by booking-guard")
        if len(item) > 500:
            raise ValueError(f"metadata value of {key!r} is longer than 500 characters")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
CallId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
Email = Annotated[str, StringConstraints(max_length=320, pattern=EMAIL_PATTERN)]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=MAX_PHONE_TEXT), AfterValidator(_phone)
]
# The pattern says in the schema what an IANA name looks like, and no list of the zones: a list
# goes stale with each tzdata release, and its names (`Etc/GMT+1`, `Etc/GMT-1`) collide once a
# client generator turns them into identifiers (openapi-python-client: "Duplicate key GMT0").
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
TimeZone = Annotated[
    str,
    StringConstraints(max_length=64, pattern=TIME_ZONE_PATTERN),
    AfterValidator(_known_time_zone),
]


FieldSlug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
FieldAnswer = (
    Annotated[str, StringConstraints(max_length=1000)]
    | bool
    | int
    | list[Annotated[str, StringConstraints(max_length=200)]]
)
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Za-z0-9]{2,4})?$")]
# Fields added after idempotency keys were first stored: left out of the fingerprint while
# unset, so a producer's retry across the upgrade still matches its key.
_LATER_FIELDS = ("booking_fields", "length_in_minutes", "guests", "location")


class AttendeeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text
    email: Email | None = None
    time_zone: TimeZone
    phone_number: Phone | None = None
    language: Language | None = None


class BookingRequest(BaseModel):
    """`POST /v1/booking-attempts` body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    call_id: CallId
    event_type_id: PositiveId
    start: Instant
    attendee: AttendeeIn
    metadata: Annotated[dict[str, str], AfterValidator(_calcom_metadata)] = Field(
        default_factory=dict
    )
    # Passed to Cal.com as given (shared/contracts/README.md, "create a booking"): answers to
    # the event type's own questions by field slug, a length, guests' e-mails, a location.
    booking_fields: dict[FieldSlug, FieldAnswer] = Field(default_factory=dict, max_length=50)
    length_in_minutes: int | None = Field(None, ge=1, le=24 * 60)
    guests: list[Email] = Field(default_factory=list, max_length=10)
    location: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None

    def fingerprint(self) -> str:
        """A digest of the parsed body: the same request in any JSON spelling matches.

        Version 2 reads `start` as its UTC instant: `08:00+02:00` and `06:00Z` are one slot, and
        the same key sent with either spelling must replay, not be `idempotency_key_reused`.
        Options added later (booking fields, guests, ...) count only when set, so a request
        without them keeps the digest it had before they existed.
        """
        body = self._canonical()
        body["start"] = self.start.astimezone(UTC).isoformat()
        canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        return FINGERPRINT_V2 + hashlib.sha256(canonical).hexdigest()

    def _canonical(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for name in _LATER_FIELDS:
            if data.get(name) in (None, [], {}):
                del data[name]
        if data["attendee"].get("language") is None:
            del data["attendee"]["language"]
        return data

    def legacy_fingerprint(self) -> str:
        """Version 1 (unprefixed, `start` as spelled), which keys stored before v2 carry."""
        canonical = orjson.dumps(self._canonical(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()

    def matches_fingerprint(self, stored: str) -> bool:
        """Whether a key's stored fingerprint, of whichever version, is this request's."""
        if stored.startswith(FINGERPRINT_V2):
            return stored == self.fingerprint()
        return stored == self.legacy_fingerprint()

    def derived_key(self) -> str:
        """The idempotency key of a request sent without one: one booking per call and slot."""
        start = self.start.astimezone(ZoneInfo("UTC")).isoformat()
        return f"derived:{self.call_id}:{self.event_type_id}:{start}"


class Appointment(BaseModel):
    appointment_id: uuid.UUID
    booking_uid: str
    booking_id: int | None
    call_id: str
    attempt_id: uuid.UUID
    event_type_id: int
    start: datetime
    end: datetime | None
    attendee_name: str
    attendee_email: str | None
    status: str


OutcomeStatus = Literal[
    "pending", "confirmed", "pending_confirmation", "cancelled", "declined", "rejected", "failed"
]


class AttemptOutcome(BaseModel):
    """What a producer is told about one attempt; stored on its idempotency key.

    `held` marks a confirmation of a booking the call already held (an idempotent retry): the
    same body, which the edge answers 200 instead of 201.
    """

    attempt_id: uuid.UUID
    # pending: in flight; confirmed / pending_confirmation: Cal.com holds the booking accepted /
    # awaiting the host; cancelled / declined: it did, and no longer does (a replay says so).
    status: OutcomeStatus
    appointment: Appointment | None = None
    reason: str | None = None
    guard: str | None = None
    detail: Any = None
    retryable: bool | None = None
    held: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_stored_status_code(cls, data: Any) -> Any:
        # Answers stored before the edge picked statuses carry `status_code` (200 meant held).
        if isinstance(data, dict) and "status_code" in data:
            stored = {k: v for k, v in data.items() if k != "status_code"}
            stored.setdefault(
                "held", data["status_code"] == 200 and data.get("status") == "confirmed"
            )
            return stored
        return data

    def body(self) -> dict[str, Any]:
        """The JSON body of the contract (DESIGN.md §6), without empty fields."""
        body = self.model_dump(mode="json", exclude_none=True, exclude={"held"})
        if self.status == "failed" and not self.retryable:
            body["error"] = self.reason
        return body
