"""One booking attempt as the workflow carries it, and the errors that stop one early."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events.booking import BookingRequested
from events.models import EventMetadata
from service.booking.guards import AttemptFacts
from service.booking.models import AttemptOutcome
from service.calcom.port import CreateBooking


class BookingInputError(ValueError):
    """The request is well-formed JSON but cannot be booked as it stands, naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class IdempotencyKeyReused(Exception):
    """The key was used before for a different request body."""


class AttemptInFlight(Exception):
    """An attempt with this key is still running; `retry_after` says when to ask again."""

    def __init__(self, attempt_id: uuid.UUID, retry_after: int) -> None:
        super().__init__(f"attempt {attempt_id} with this idempotency key is still in flight")
        self.attempt_id = attempt_id
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class BookingResult:
    outcome: AttemptOutcome
    replayed: bool


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt as the workflow drives it."""

    attempt_id: uuid.UUID
    key: str
    requested: BookingRequested
    first_called_at: datetime
    # Every attempt under this key: a booking carrying any of these ids is ours.
    own_attempt_ids: frozenset[uuid.UUID]
    correlation_id: str | None

    @property
    def facts(self) -> AttemptFacts:
        return AttemptFacts(
            attempt_id=self.attempt_id,
            call_id=self.requested.call_id,
            start=self.requested.start,
            attendee_email=self.requested.attendee.email,
            first_called_at=self.first_called_at,
            own_attempt_ids=self.own_attempt_ids,
        )

    def create_request(self) -> CreateBooking:
        r = self.requested
        return CreateBooking(
            event_type_id=r.event_type_id,
            start=r.start,
            attendee_name=r.attendee.name,
            attendee_time_zone=r.attendee.time_zone,
            attendee_email=r.attendee.email,
            attendee_phone_number=r.attendee.phone_number,
            metadata={**r.metadata, "call_id": r.call_id, "attempt_id": str(self.attempt_id)},
            attendee_language=r.options.language,
            booking_fields=r.options.booking_fields,
            length_in_minutes=r.options.length_in_minutes,
            guests=tuple(r.options.guests),
            location=r.options.location,
        )


@dataclass(frozen=True, slots=True)
class ClaimedAttempt:
    """An attempt whose intent is recorded and whose key this process holds."""

    attempt: Attempt
    reconcile: bool
    # What the claim statement read of the call's live appointment for the slot, and when
    # (`KeyedLocks.mark`); None when it was not read in the claim (the key existed).
    held: dict[str, Any] | None = None
    held_mark: int | None = None

    @property
    def attempt_id(self) -> uuid.UUID:
        return self.attempt.attempt_id


# RFC 5321's limit on a local part; Cal.com's isEmail (validator.js) enforces it too.
MAX_LOCAL_PART_OCTETS = 64
_PLAIN_TAG = re.compile(r"[A-Za-z0-9_-]+")
# What follows "=" in an escaped tag is always two hex digits, so "==" starts only a hashed tag.
_HASHED_PREFIX = "=="


def plus_tag(call_id: str, *, budget: int) -> str:
    """The sub-address of a call, distinct for distinct call ids, at most `budget` octets.

    Three shapes that cannot meet: ids of [A-Za-z0-9_-] as they are (`termin+call_687@`);
    others with every other character escaped as `=XX` per UTF-8 octet, "=" included
    (`call:77` -> `call=3A77`, never `call77`); and, when that is longer than the budget, "=="
    and a truncated SHA-256 of the id. Every shape is a dot-atom of atext, a valid local part.
    """
    if _PLAIN_TAG.fullmatch(call_id):
        tag = call_id
    else:
        tag = "".join(
            c if _PLAIN_TAG.fullmatch(c) else "".join(f"={b:02X}" for b in c.encode("utf-8"))
            for c in call_id
        )
    if len(tag) <= budget:
        return tag
    digest = hashlib.sha256(call_id.encode("utf-8")).hexdigest()
    return _HASHED_PREFIX + digest[: budget - len(_HASHED_PREFIX)]


def plus_address(mailbox: str, call_id: str) -> str:
    """`termin@example.com` -> `termin+<call_id>@example.com`: one attendee address per call."""
    local, _, domain = mailbox.rpartition("@")
    budget = MAX_LOCAL_PART_OCTETS - len(local.encode("utf-8")) - 1
    return f"{local}+{plus_tag(call_id, budget=budget)}@{domain}"


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def event_metadata(holder: str, correlation_id: str | None) -> EventMetadata:
    """The metadata of every event this process writes for a request."""
    return EventMetadata(correlation_id=correlation_id, producer=holder)
