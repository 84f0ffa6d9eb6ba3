"""Retell's custom function call for booking: its arguments as a booking request, and the
outcome as one short sentence the agent can say (Retell hands the body to its LLM)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from service.api.retell_speech import local_slots, say_day, say_times
from service.booking.alternatives import SlotFinder
from service.booking.attempt import AttemptInFlight, BookingInputError, IdempotencyKeyReused
from service.booking.event_kinds import UnsupportedEventType
from service.booking.field_types import PositiveId, UpstreamInt
from service.booking.models import (
    AttemptOutcome,
    BookingRequest,
    CallId,
    Email,
    FieldAnswer,
    FieldSlug,
    Phone,
    Text,
    TimeZone,
)
from service.booking.workflow import BookingWorkflow
from service.calcom.phones import e164

BOOKING_FUNCTIONS = frozenset({"book_appointment"})
# The intent's metadata key noting a caller id that was left out.
CALLER_ID_NOTE = "caller_id_note"
# The request's field names as the agent's function arguments spell them.
_ARG_NAMES = {
    "attendee.name": "name",
    "attendee.email": "email",
    "attendee.time_zone": "time_zone",
    "attendee.phone_number": "phone",
    "call_id": "call.call_id",
}


def _clipped(limit: int) -> BeforeValidator:
    # Descriptive fields are cut rather than refused: losing a whole webhook for a long
    # disconnection reason would cost more than the characters do.
    return BeforeValidator(lambda v: v[:limit] if isinstance(v, str) else v)


Short = Annotated[str, _clipped(128)]


class RetellCall(BaseModel):
    """The `call` object Retell sends with function calls and lifecycle webhooks."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    call_id: CallId
    agent_id: Short | None = None
    call_status: Short | None = None
    direction: Short | None = None
    from_number: Short | None = None
    to_number: Short | None = None
    start_timestamp: UpstreamInt | None = Field(None, ge=0, lt=2**53)
    end_timestamp: UpstreamInt | None = Field(None, ge=0, lt=2**53)
    disconnection_reason: Short | None = None
    call_analysis: dict[str, Any] | None = None


class RetellFunctionCall(BaseModel):
    """A custom function call: the function's name, the call, the LLM's arguments."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(max_length=64)
    call: RetellCall
    args: dict[str, Any]


class BookingArgs(BaseModel):
    """`book_appointment`'s arguments as the LLM gives them: what validates them, and what
    `booking-guard retell functions` prints for Retell (field names, types, descriptions).

    The agent's configuration adds `length_in_minutes`, `location`, `language` and `guests`
    (service/api/retell_agents.py); they are not the LLM's to give, so they are not here.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type_id: PositiveId = Field(description="The Cal.com event type to book.")
    start: str = Field(
        max_length=64,
        description="When the appointment starts, ISO 8601 (2025-10-10T08:00); without an "
        "offset it is read in time_zone.",
    )
    name: Text = Field(description="The caller's full name.")
    time_zone: TimeZone = Field(description="The caller's IANA time zone, e.g. Europe/Berlin.")
    email: Email | None = Field(None, description="The caller's e-mail address, if they give one.")
    phone: Phone | None = Field(
        None,
        description="The caller's phone number in international form (+4930123456); leave it "
        "out to use the number they are calling from.",
    )
    booking_fields: dict[FieldSlug, FieldAnswer] | None = Field(
        None,
        max_length=50,
        description="The caller's answers to the appointment type's own questions, by field name.",
    )


def booking_request(call: RetellCall, args: dict[str, Any]) -> BookingRequest:
    """The booking request the arguments describe; raises pydantic's ValidationError."""
    given = BookingArgs.model_validate(args)
    time_zone = given.time_zone
    phone = given.phone
    metadata = {"source": "retell"}
    if call.agent_id:
        metadata["retell_agent_id"] = call.agent_id
    if phone is None and call.from_number:
        phone = e164(call.from_number)
        if phone is None:
            # A caller id Cal.com would refuse (`+266696687`: the right shape, no such number)
            # would cost the whole booking a 400; leave it out and book by e-mail, and say so
            # on the intent (its metadata is in the audit and on the Cal.com booking).
            metadata[CALLER_ID_NOTE] = "caller id is not a valid phone number; left out"
    attendee: dict[str, Any] = {"name": given.name, "time_zone": time_zone}
    if given.email is not None:
        attendee["email"] = given.email
    if phone is not None:
        attendee["phone_number"] = phone
    if args.get("language") is not None:
        attendee["language"] = args["language"]
    # Set by the agent's configuration (service/api/retell_agents.py), answers by the caller.
    carried = {
        name: args[name]
        for name in ("booking_fields", "length_in_minutes", "guests", "location")
        if args.get(name) is not None
    }
    return BookingRequest.model_validate(
        {
            "call_id": call.call_id,
            "event_type_id": given.event_type_id,
            "start": _localised(given.start, time_zone),
            "attendee": attendee,
            "metadata": metadata,
            **carried,
        }
    )


def _localised(start: Any, time_zone: Any) -> Any:
    """An LLM often says `2025-10-10T08:00` meaning the caller's local time: give it the zone."""
    if not isinstance(start, str) or not isinstance(time_zone, str):
        return start
    try:
        moment = datetime.fromisoformat(start)
        zone = ZoneInfo(time_zone)
    except (ValueError, ZoneInfoNotFoundError):
        return start
    if moment.tzinfo is not None:
        return start
    return moment.replace(tzinfo=zone).isoformat()


def local_time_problem(start: Any, time_zone: Any) -> str | None:
    """Why a start without an offset names no single instant in `time_zone`, or None.

    A wall time in a daylight-saving gap does not exist and one in an overlap exists twice;
    `replace(tzinfo=...)` would pick one silently (fold=0) and book an hour off. zoneinfo's fold
    tells them apart: fold 0 and 1 give different offsets only at a transition; there, a wall
    time that survives the round trip through UTC exists twice, one that does not never exists.
    """
    if not isinstance(start, str) or not isinstance(time_zone, str):
        return None
    try:
        moment = datetime.fromisoformat(start)
        zone = ZoneInfo(time_zone)
        if moment.tzinfo is not None:
            return None
        earlier, later = moment.replace(tzinfo=zone, fold=0), moment.replace(tzinfo=zone, fold=1)
        if earlier.utcoffset() == later.utcoffset():
            return None
        round_trip = earlier.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    except (ValueError, OverflowError, ZoneInfoNotFoundError):
        return None  # the model says what is wrong with such input
    when = f"{moment:%H:%M} on {moment:%A} {moment.day} {moment:%B}"
    if round_trip != moment:
        return (
            f"{when} does not exist in {time_zone}, the clocks skip that hour; ask for another time"
        )
    return (
        f"{when} happens twice in {time_zone}, the clocks go back that night; ask whether the "
        "caller means the first or the second"
    )


def _invalid(fields: list[str], reason: str | None = None) -> dict[str, Any]:
    names = ", ".join(dict.fromkeys(_ARG_NAMES.get(f, f) for f in fields))
    message = reason or f"I could not use {names}"
    return {
        "result": "invalid",
        "message": f"{message}. Please check with the caller and try again.",
        "invalid_args": sorted({_ARG_NAMES.get(f, f) for f in fields}),
    }


async def answer_booking_call(
    workflow: BookingWorkflow, slots: SlotFinder, call: RetellCall, args: dict[str, Any]
) -> dict[str, Any]:
    """Book what the function call asks for and say how it went."""
    problem = local_time_problem(args.get("start"), args.get("time_zone"))
    if problem is not None:
        return _invalid(["start"], problem[0].upper() + problem[1:])
    try:
        request = booking_request(call, args)
    except ValidationError as e:
        fields = [".".join(str(p) for p in err["loc"]) or "args" for err in e.errors()]
        return _invalid(fields)
    try:
        result = await workflow.book(request, correlation_id=call.call_id)
    except BookingInputError as e:
        return _invalid([e.field], f"The {_ARG_NAMES.get(e.field, e.field)} {e.message}")
    except UnsupportedEventType as e:
        return {
            "result": "unsupported",
            "message": f"This appointment type ({e.kind}) cannot be booked by phone. "
            "Please offer to have someone call the caller back.",
        }
    except IdempotencyKeyReused:
        return {
            "result": "conflict",
            "message": "This call already asked for that time with other details. "
            "Please confirm the details with the caller.",
        }
    except AttemptInFlight:
        return {
            "result": "pending",
            "message": "I am still booking that time. Please wait a moment and try again.",
        }
    alternatives: list[datetime] = []
    if result.outcome.status == "rejected":
        # Looked up now, for this answer and Retell's retries of it alike.
        alternatives = await slots.alternatives(request.event_type_id, request.start)
    return spoken(
        result.outcome, request.attendee.time_zone, alternatives=alternatives, wanted=request.start
    )


def spoken(
    outcome: AttemptOutcome,
    time_zone: str,
    *,
    alternatives: Sequence[datetime] = (),
    wanted: datetime | None = None,
) -> dict[str, Any]:
    """The outcome as Retell's LLM should hear it; a refusal names free times nearby."""
    body: dict[str, Any] = {"attempt_id": str(outcome.attempt_id)}
    if outcome.status == "confirmed" and outcome.appointment is None:
        return {**body, "result": "confirmed", "message": "That booking is confirmed."}
    if outcome.status == "confirmed" and outcome.appointment is not None:
        when = outcome.appointment.start.astimezone(ZoneInfo(time_zone))
        return {
            **body,
            "result": "confirmed",
            "message": f"Booked for {say_day(when)} at {when:%H:%M}.",
            "appointment_id": str(outcome.appointment.appointment_id),
            "start": when.isoformat(),
        }
    if outcome.status == "pending_confirmation" and outcome.appointment is not None:
        when = outcome.appointment.start.astimezone(ZoneInfo(time_zone))
        return {
            **body,
            "result": "pending_confirmation",
            "message": f"The request for {when:%A} {when.day} {when:%B} at {when:%H:%M} is"
            " noted; the practice still has to confirm it and will be in touch.",
            "appointment_id": str(outcome.appointment.appointment_id),
            "start": when.isoformat(),
        }
    if outcome.status in ("cancelled", "declined"):
        return {
            **body,
            "result": outcome.status,
            "message": "That booking is no longer held. Please offer the caller another time.",
        }
    if outcome.status == "rejected" and alternatives:
        on = wanted.astimezone(ZoneInfo(time_zone)).date() if wanted is not None else None
        times = say_times(alternatives, time_zone, on=on)
        verb = "is" if len(alternatives) == 1 else "are"
        return {
            **body,
            "result": "slot_taken",
            "message": "That time is not available. Please offer the caller another time: "
            f"{times} {verb} free.",
            "alternatives": local_slots(alternatives, time_zone),
        }
    if outcome.status == "rejected":
        return {
            **body,
            "result": "slot_taken",
            "message": "That time is not available. Please offer the caller another time.",
            "alternatives": [],
        }
    if outcome.status == "failed" and not outcome.retryable:
        return {
            **body,
            "result": "failed",
            "message": "The calendar could not take this booking. Please offer another time.",
        }
    if outcome.reason == "calcom_rate_limited":
        return {
            **body,
            "result": "try_again",
            "message": "The calendar is busy right now. Please try again in a minute.",
        }
    if outcome.reason == "calcom_auth_failed":
        # Not "did not answer in time": the calendar refused us, and nothing false is said.
        return {
            **body,
            "result": "try_again",
            "message": "The calendar cannot take bookings right now. Please tell the caller "
            "we will confirm the appointment later.",
        }
    return {
        **body,
        "result": "try_again",
        "message": "The calendar did not answer in time. Please try again in a moment.",
    }
