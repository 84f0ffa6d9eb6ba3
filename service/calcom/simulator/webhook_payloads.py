"""The bodies of the webhooks the simulated Cal.com sends, shaped like Cal.com's v2021-10-20 ones.

Read from Cal.com's source: `sendPayload.ts` (the envelope), `BookingPayloadBuilder.ts` (the
fields per trigger), `handleCancelBooking.ts` and `handleConfirmation.ts` (what each action puts
in). Statuses are upper case here, unlike the API's lower case.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from service.calcom.port import to_calcom_time
from service.calcom.simulator.state import SimulatedBooking

Trigger = Literal[
    "BOOKING_CREATED",
    "BOOKING_REQUESTED",
    "BOOKING_REJECTED",
    "BOOKING_CANCELLED",
    "BOOKING_RESCHEDULED",
]


def booking_webhook(
    trigger: Trigger,
    booking: SimulatedBooking,
    *,
    created_at: datetime,
    previous: SimulatedBooking | None = None,
    confirmed_by_host: bool = False,
) -> dict[str, Any]:
    """The whole webhook body for `trigger` about `booking`, sent at `created_at`."""
    payload = _common(booking)
    video = {"videoCallUrl": _video_url(booking)}
    if trigger == "BOOKING_CREATED" and confirmed_by_host:
        # handleConfirmation.ts sends only the video link: the metadata the create carried is not
        # in this payload, so a receiver must match the host's confirmation on the uid.
        payload.update(status="ACCEPTED", metadata=video)
    elif trigger in ("BOOKING_CREATED", "BOOKING_REQUESTED"):
        payload.update(status=booking.status.upper(), metadata=video | booking.metadata)
    elif trigger == "BOOKING_REJECTED":
        # The confirm handler builds this event inline: no metadata of the booking's.
        payload.update(status="REJECTED", rejectionReason=booking.rejection_reason)
    elif trigger == "BOOKING_CANCELLED":
        # handleCancelBooking.ts spreads its CalendarEvent, which carries no booking metadata.
        payload.update(
            status="CANCELLED",
            cancellationReason=booking.cancellation_reason,
            cancelledBy=booking.cancelled_by,
            requestReschedule=False,
        )
    else:
        if previous is None:
            raise ValueError("a BOOKING_RESCHEDULED webhook needs the booking it replaced")
        payload.update(
            status=booking.status.upper(),
            metadata=video | booking.metadata,
            rescheduleId=previous.id,
            rescheduleUid=previous.uid,
            rescheduleStartTime=_webhook_time(previous.start),
            rescheduleEndTime=_webhook_time(previous.end),
            rescheduledBy=booking.event_type.host.email,
        )
    # Cal.com stamps the envelope with `new Date().toISOString()`: milliseconds and Z.
    return {"triggerEvent": trigger, "createdAt": to_calcom_time(created_at), "payload": payload}


def _common(booking: SimulatedBooking) -> dict[str, Any]:
    """The CalendarEvent fields every booking trigger spreads into its payload."""
    event_type = booking.event_type
    host = event_type.host
    attendee = booking.attendee
    first, _, last = str(attendee["name"]).strip().partition(" ")
    person: dict[str, Any] = {
        "name": attendee["name"],
        "email": attendee["email"],
        "timeZone": attendee["timeZone"],
        "language": {"locale": attendee.get("language") or "en"},
        "utcOffset": _utc_offset(attendee["timeZone"], booking.start),
        "firstName": first,
        "lastName": last.strip(),
    }
    if "phoneNumber" in attendee:
        person["phoneNumber"] = attendee["phoneNumber"]
    return {
        "type": event_type.slug,
        "title": f"{event_type.title} between {host.name} and {attendee['name']}",
        "description": "",
        "additionalNotes": "",
        "customInputs": {},
        "startTime": _webhook_time(booking.start),
        "endTime": _webhook_time(booking.end),
        "organizer": {
            "id": host.id,
            "name": host.name,
            "email": host.email,
            "username": host.username,
            "timeZone": host.time_zone,
            "timeFormat": "h:mma",
            "language": {"locale": "en"},
            "utcOffset": _utc_offset(host.time_zone, booking.start),
        },
        "attendees": [person],
        "responses": {
            "name": {"label": "your_name", "value": attendee["name"]},
            "email": {"label": "email_address", "value": attendee["email"]},
        },
        "location": booking.location if isinstance(booking.location, str) else "integrations:daily",
        "uid": booking.uid,
        "bookingId": booking.id,
        "eventTypeId": event_type.id,
        "eventTitle": event_type.title,
        "eventDescription": None,
        "requiresConfirmation": event_type.requires_confirmation or None,
        "price": 0,
        "currency": "usd",
        "length": event_type.length_minutes,
        "destinationCalendar": None,
    }


def _video_url(booking: SimulatedBooking) -> str:
    return f"https://app.cal.com/video/{booking.uid}"


def _webhook_time(moment: datetime) -> str:
    """dayjs(...).format() of a UTC time, as the CalendarEvent carries start and end."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_offset(time_zone: str, at: datetime) -> int:
    """Minutes east of UTC in `time_zone` at `at`, as Cal.com's getUTCOffsetByTimezone."""
    offset = at.astimezone(ZoneInfo(time_zone)).utcoffset()
    return 0 if offset is None else int(offset.total_seconds() // 60)
