"""Hypothesis strategies for every inbound body and every Cal.com answer: valid, odd, broken.

Valid ones are built from the models' own constraints (service/booking/models.py and the webhook
models); odd ones are valid but unusual (unicode, edges of ranges, far-future and offset-laden
times, optional fields left out); broken ones are what a buggy or hostile sender writes (wrong
types, extra fields, unknown zones, NULs, huge strings, deep nesting, not JSON at all).
"""

from __future__ import annotations

import json
import zoneinfo
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from tests.e2e.conftest import INCIDENT_MORNING

JSON = Any
# The simulator's event types (service/calcom/simulator/event_types.py): returns-existing, plain,
# host confirmation, seated, recurring, one with a required question.
EVENT_TYPES = st.sampled_from([1001, 1002, 1003, 1011, 1012, 1013])
# Bodies are serialised by the standard library, which (unlike orjson) writes integers beyond 64
# bits and lone surrogates; DEEP is replaced by nesting no JSON encoder would recurse into.
DEEP = "\ue000deep\ue000"
ZONES = sorted(zoneinfo.available_timezones())

scalars: st.SearchStrategy[JSON] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values: st.SearchStrategy[JSON] = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# Values of the wrong type wherever they are put, and the nastiest strings.
wrong: st.SearchStrategy[JSON] = st.one_of(
    json_values,
    st.just(2**63),
    st.just(2**64 + 1),
    st.just(-1),
    st.just(0),
    st.just(True),
    st.just(1e308),
    st.just("\x00"),
    st.just("\ud800"),
    st.just("x" * 70_000),
    st.just(DEEP),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40),
)


def encode(body: JSON, depth: int = 3_000) -> bytes:
    """The body as the standard library writes it, with DEEP as `depth` nested lists."""
    text = json.dumps(body)
    return text.replace(json.dumps(DEEP), "[" * depth + "]" * depth).encode()


# --- times -----------------------------------------------------------------------------------

offsets = st.sampled_from([0, 60, 120, -300, 330, 345, 840, -720, 59]).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@st.composite
def bookable_starts(draw: st.DrawFn) -> str:
    """A start in the simulator's bookable window, in any offset and spelling."""
    days = draw(st.integers(min_value=1, max_value=700))
    half_hours = draw(st.integers(min_value=0, max_value=47))
    moment = (INCIDENT_MORNING + timedelta(days=days)).replace(hour=0, minute=0, second=0)
    moment += timedelta(minutes=30 * half_hours)
    local = moment.astimezone(draw(offsets))
    spelling = draw(st.sampled_from(["iso", "z", "millis"]))
    if spelling == "z" and local.utcoffset() == timedelta(0):
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    if spelling == "millis":
        return local.isoformat(timespec="milliseconds")
    return local.isoformat()


odd_starts = st.one_of(
    # Far future, the edges of the calendar, odd precision.
    st.datetimes(
        min_value=datetime(2027, 1, 1),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC),
    ).map(lambda d: d.isoformat()),
    st.just("9999-12-31T23:59:59+00:00"),
    st.just("9999-12-31T23:59:59-14:00"),
    st.just("0001-01-01T00:00:00+14:00"),
    st.just("2025-10-10T06:00:00.123456789Z"),
    st.just("2025-10-10T08:00:00+02:00"),
    # The past: the day before the incident.
    st.just("2025-10-05T06:00:00Z"),
)
broken_starts = st.one_of(
    st.just("2025-10-10T08:00:00"),  # naive
    st.just("2025-13-40T25:61:00Z"),
    st.just("tomorrow at eight"),
    st.just(""),
    st.just("2025-10-10T08:00:00+24:00"),
    st.text(max_size=30),
    st.integers(),
)


# --- the booking API -------------------------------------------------------------------------

names = st.one_of(
    st.just("Hansi Sputer"),
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
        min_size=1,
        max_size=200,
    ).filter(lambda s: s.strip()),
    st.just("Ærøskøbing 山田 太郎 👩‍⚕️"),
    st.just("x" * 200),
)
emails = st.one_of(
    st.just("termin@example.com"),
    st.from_regex(r"[a-z0-9.+_-]{1,20}@[a-z0-9-]{1,20}\.[a-z]{2,6}", fullmatch=True),
    st.just("üñí@exämple.de"),
)
call_ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,40}", fullmatch=True) | st.just("c" * 128)
metadata = st.dictionaries(
    st.from_regex(r"[a-z_]{1,40}", fullmatch=True).filter(
        lambda k: k not in ("call_id", "attempt_id")
    ),
    st.text(max_size=60),
    max_size=5,
)


@st.composite
def attendees(draw: st.DrawFn) -> dict[str, JSON]:
    attendee: dict[str, JSON] = {"name": draw(names), "time_zone": draw(st.sampled_from(ZONES))}
    if draw(st.booleans()):
        attendee["email"] = draw(emails)
    if draw(st.integers(0, 3)) == 0:
        attendee["phone_number"] = draw(
            st.sampled_from(["+4930123456", "+14155552671", "+447911123456"])
        )
    if draw(st.integers(0, 3)) == 0:
        attendee["language"] = draw(st.sampled_from(["de", "en", "en-GB", "pt-BR"]))
    return attendee


@st.composite
def valid_bookings(draw: st.DrawFn) -> dict[str, JSON]:
    """A BookingRequest body the model accepts: required fields always, optional ones sometimes."""
    body: dict[str, JSON] = {
        "call_id": draw(call_ids),
        "event_type_id": draw(EVENT_TYPES),
        "start": draw(bookable_starts()),
        "attendee": draw(attendees()),
    }
    if draw(st.booleans()):
        body["metadata"] = draw(metadata)
    if draw(st.integers(0, 3)) == 0:
        body["booking_fields"] = draw(
            st.dictionaries(
                st.sampled_from(["reason", "notes", "insurance"]),
                st.one_of(st.text(max_size=50), st.booleans(), st.integers(0, 99)),
                max_size=3,
            )
        )
    if draw(st.integers(0, 3)) == 0:
        body["length_in_minutes"] = draw(st.sampled_from([1, 15, 30, 60, 24 * 60]))
    if draw(st.integers(0, 4)) == 0:
        body["guests"] = draw(st.lists(emails, max_size=10))
    if draw(st.integers(0, 4)) == 0:
        body["location"] = draw(st.text(min_size=1, max_size=500))
    return body


@st.composite
def odd_bookings(draw: st.DrawFn) -> dict[str, JSON]:
    """Valid shape, unusual values: other event type ids, far or past starts, edge lengths."""
    body = draw(valid_bookings())
    change = draw(st.sampled_from(["event_type", "start", "metadata", "minimal"]))
    if change == "event_type":
        body["event_type_id"] = draw(st.sampled_from([1, 999, 2**31, 2**63 - 1]))
    elif change == "start":
        body["start"] = draw(odd_starts)
    elif change == "metadata":
        body["metadata"] = {f"k{i}": "v" * 500 for i in range(48)}
    else:
        body = {k: body[k] for k in ("call_id", "event_type_id", "start", "attendee")}
        body["attendee"] = {"name": body["attendee"]["name"], "time_zone": "UTC"}
    return body


BOOKING_FIELDS = [
    "call_id",
    "event_type_id",
    "start",
    "attendee",
    "metadata",
    "length_in_minutes",
    "guests",
    "booking_fields",
    "location",
]
ATTENDEE_FIELDS = ["name", "email", "time_zone", "phone_number", "language"]


@st.composite
def broken_bookings(draw: st.DrawFn) -> JSON:
    """Bodies the API must refuse with a 4xx naming the problem."""
    body = draw(valid_bookings())
    how = draw(
        st.sampled_from(
            [
                "wrong_type",
                "attendee_wrong_type",
                "missing",
                "extra",
                "time_zone",
                "start",
                "not_an_object",
                "reserved_metadata",
                "nul",
                "huge",
            ]
        )
    )
    if how == "wrong_type":
        body[draw(st.sampled_from(BOOKING_FIELDS))] = draw(wrong)
    elif how == "attendee_wrong_type":
        body["attendee"][draw(st.sampled_from(ATTENDEE_FIELDS))] = draw(wrong)
    elif how == "missing":
        del body[draw(st.sampled_from(["call_id", "event_type_id", "start", "attendee"]))]
    elif how == "extra":
        body[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in BOOKING_FIELDS))] = (
            draw(wrong)
        )
    elif how == "time_zone":
        body["attendee"]["time_zone"] = draw(
            st.sampled_from(["Mars/Olympus", "Europe/Berlin\x00", "../../etc/passwd", "", "UTC+2"])
        )
    elif how == "start":
        body["start"] = draw(broken_starts)
    elif how == "not_an_object":
        return draw(st.one_of(st.lists(json_values, max_size=3), scalars, st.just(DEEP)))
    elif how == "reserved_metadata":
        body["metadata"] = {"call_id": "other"}
    elif how == "nul":
        body[draw(st.sampled_from(["call_id", "start"]))] = "a\x00b"
    else:
        body["attendee"]["name"] = "n" * 300_000
    return body


booking_bodies = st.one_of(valid_bookings(), odd_bookings(), broken_bookings())
# Bytes no JSON parser accepts, or no UTF-8 decoder.
not_json = st.sampled_from(
    [b"", b"{", b"\xff\xfe{}", b"<html>oops</html>", b'{"a": 1}{', b"nul\x00"]
)


# --- Retell function calls -------------------------------------------------------------------


@st.composite
def retell_args(draw: st.DrawFn) -> dict[str, JSON]:
    """`book_appointment` or `check_availability` arguments as an LLM gives them."""
    booking = draw(valid_bookings())
    args: dict[str, JSON] = {
        "event_type_id": booking["event_type_id"],
        "start": booking["start"],
        "name": booking["attendee"]["name"],
        "time_zone": booking["attendee"]["time_zone"],
    }
    if "email" in booking["attendee"]:
        args["email"] = booking["attendee"]["email"]
    if draw(st.booleans()):
        # Local times without an offset, which the LLM usually gives.
        args["start"] = booking["start"][:16]
    return args


@st.composite
def retell_calls(draw: st.DrawFn) -> JSON:
    name = draw(
        st.sampled_from(["book_appointment"] * 4 + ["check_availability", "transfer_call", ""])
    )
    args = draw(retell_args())
    if name == "check_availability":
        args = {
            "event_type_id": args["event_type_id"],
            "time_zone": args["time_zone"],
            "day": args["start"][:10],
        }
    mode = draw(
        st.sampled_from(["valid", "valid", "odd", "broken_arg", "broken_call", "lifecycle"])
    )
    call: dict[str, JSON] = {
        "call_id": draw(call_ids),
        "agent_id": "agent_prop",
        "from_number": draw(st.sampled_from(["+4930123456", "+266696687", "anonymous"])),
    }
    if mode == "odd":
        args.pop("email", None)
        args["extra"] = draw(json_values)
        call["start_timestamp"] = draw(st.sampled_from([0, 2**53 - 1, "1700000000000"]))
    elif mode == "broken_arg":
        args[draw(st.sampled_from([*list(args), "phone", "booking_fields"]))] = draw(wrong)
    elif mode == "broken_call":
        key = draw(st.sampled_from(["call_id", "start_timestamp", "agent_id"]))
        call[key] = draw(wrong)
    elif mode == "lifecycle":
        return {
            "event": draw(st.sampled_from(["call_started", "call_ended", "call_analyzed", "odd"])),
            "call": call,
        }
    body: dict[str, JSON] = {"name": name, "call": call, "args": args}
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.sampled_from(["name", "call", "args"]))] = draw(wrong)
    return body


# --- Cal.com webhooks ------------------------------------------------------------------------

TRIGGERS = [
    "BOOKING_CREATED",
    "BOOKING_REQUESTED",
    "BOOKING_REJECTED",
    "BOOKING_CANCELLED",
    "BOOKING_RESCHEDULED",
    "MEETING_ENDED",
    "BOOKING_PAYMENT_INITIATED",
    "booking_created",
]


@st.composite
def calcom_webhooks(draw: st.DrawFn, known_uids: list[str]) -> JSON:
    """Every trigger, about bookings Cal.com holds or never heard of; odd and broken payloads."""
    uid = draw(st.sampled_from(known_uids) | st.from_regex(r"[A-Za-z0-9]{1,22}", fullmatch=True))
    start = draw(bookable_starts())
    payload: dict[str, JSON] = {
        "uid": uid,
        "bookingId": draw(st.integers(min_value=1, max_value=2**31)),
        "eventTypeId": draw(EVENT_TYPES),
        "startTime": start,
        "endTime": start,
        "status": draw(
            st.sampled_from(["ACCEPTED", "PENDING", "CANCELLED", "REJECTED", "accepted"])
        ),
    }
    if draw(st.booleans()):
        payload["metadata"] = draw(
            st.sampled_from(
                [
                    {},
                    {"call_id": "call_x"},
                    {"call_id": "c", "attempt_id": "not-a-uuid"},
                    {"videoCallUrl": "https://x"},
                ]
            )
        )
    trigger = draw(st.sampled_from(TRIGGERS))
    if trigger == "BOOKING_RESCHEDULED":
        payload["rescheduleUid"] = draw(st.sampled_from(known_uids) | st.just("new-uid"))
    if trigger == "BOOKING_CANCELLED":
        payload["cancellationReason"] = draw(st.text(max_size=700))
    mode = draw(st.sampled_from(["valid", "valid", "odd", "broken"]))
    if mode == "odd":
        payload["bookingId"] = draw(
            st.sampled_from([str(payload["bookingId"]), None, 0, 2**63 - 1])
        )
        payload[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
        payload.pop(draw(st.sampled_from(["endTime", "status", "eventTypeId", "metadata"])), None)
    elif mode == "broken":
        key = draw(
            st.sampled_from(
                [
                    "uid",
                    "bookingId",
                    "eventTypeId",
                    "startTime",
                    "endTime",
                    "status",
                    "metadata",
                    "rescheduleUid",
                    "cancellationReason",
                ]
            )
        )
        payload[key] = draw(wrong | st.sampled_from(["", "u" * 10_240, "uid\x00", 2**63]))
    body: dict[str, JSON] = {
        "triggerEvent": trigger,
        "createdAt": draw(
            st.sampled_from(
                ["2025-10-06T09:04:27.000Z", "2025-10-06T09:04:27", "2025-10-06T11:04:27+02:00"]
            )
        ),
        "payload": payload,
    }
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.sampled_from(["triggerEvent", "createdAt", "payload"]))] = draw(wrong)
    return body


# --- Cal.com's answers -----------------------------------------------------------------------


@st.composite
def calcom_bookings(draw: st.DrawFn, start: str, event_type_id: int) -> dict[str, JSON]:
    """A booking object as Cal.com's answer carries it, valid or odd."""
    booking: dict[str, JSON] = {
        "id": draw(st.integers(min_value=1, max_value=2**62)),
        "uid": draw(st.from_regex(r"[A-Za-z0-9]{8,22}", fullmatch=True)),
        "status": draw(st.sampled_from(["accepted", "pending", "ACCEPTED", "cancelled", "weird"])),
        "start": start,
        "end": start,
        "createdAt": "2025-10-06T09:04:27.000Z",
        "eventTypeId": event_type_id,
        "attendees": [
            {"name": "Hansi Sputer", "email": "termin@example.com", "timeZone": "Europe/Berlin"}
        ],
        "metadata": {},
    }
    for key in draw(
        st.lists(
            st.sampled_from(
                [
                    "createdAt",
                    "metadata",
                    "end",
                    "attendees",
                    "id",
                    "eventTypeId",
                    "status",
                    "start",
                ]
            ),
            max_size=3,
        )
    ):
        booking.pop(key, None)
    if draw(st.booleans()):
        booking[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return booking


@st.composite
def calcom_answers(draw: st.DrawFn, start: str, event_type_id: int) -> tuple[int, JSON | bytes]:
    """(status, body) of one Cal.com answer: valid, odd or broken."""
    booking = draw(calcom_bookings(start, event_type_id))
    mode = draw(
        st.sampled_from(["valid", "list", "broken_field", "broken_shape", "not_json", "error"])
    )
    status = draw(st.sampled_from([200, 201]))
    if mode == "valid":
        return status, {"status": "success", "data": booking}
    if mode == "list":
        return status, {"status": "success", "data": draw(st.lists(st.just(booking), max_size=3))}
    if mode == "broken_field":
        key = draw(
            st.sampled_from(
                [
                    "uid",
                    "id",
                    "start",
                    "createdAt",
                    "status",
                    "attendees",
                    "metadata",
                    "eventTypeId",
                    "end",
                ]
            )
        )
        booking[key] = draw(
            wrong
            | st.sampled_from(
                # A copy in a list where the value belongs (the booking itself would be circular).
                ["", "u" * 10_240, "uid\x00", 2**63, 2**64, "2025-10-10T06:00:00", [dict(booking)]]
            )
        )
        return status, {"status": "success", "data": booking}
    if mode == "broken_shape":
        return status, draw(
            st.sampled_from(
                [
                    {"status": "success"},
                    {"status": "success", "data": None},
                    {"status": "success", "data": "booked"},
                    {"status": "error", "data": booking},
                    {"data": booking},
                    [booking],
                    booking,
                    None,
                    {"status": "success", "data": {"booking": booking}},
                    {"status": "success", "data": DEEP},
                ]
            )
            | json_values
        )
    if mode == "not_json":
        return status, draw(not_json)
    # Error statuses with their own odd bodies.
    return draw(st.sampled_from([400, 401, 404, 409, 422, 429, 500, 502, 503])), draw(
        st.sampled_from(
            [
                {"status": "error", "error": {"code": "X", "message": "m"}},
                {},
                None,
                {"statusCode": 409, "message": "booking_conflict_error"},
            ]
        )
        | not_json
        | json_values
    )
