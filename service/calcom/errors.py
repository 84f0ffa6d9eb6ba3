"""Cal.com's error answers, translated once into the port's errors with Cal.com's own words."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from service.calcom.port import (
    CalcomAuthFailed,
    CalcomError,
    CalcomRejected,
    CalcomSlotUnavailable,
    CalcomUnavailable,
)

# Cal.com's words for a taken slot: the v2 message for a user and for a team event type, and the
# internal error codes older controllers let through (apps/api/v2 bookings service,
# handleBookingError). Anything else in a 400 is a rejection of our request.
_SLOT_TAKEN_MARKERS = (
    "already has booking at this time or is not available",
    "no_available_users_found_error",
    "fixed_hosts_unavailable_for_booking",
)
_BOOKING_CONFLICT = "booking_conflict_error"


def calcom_error(status: int, body: Any, *, retry_after: float | None = None) -> CalcomError:
    """Translate one non-2xx answer of Cal.com into the port's error, keeping Cal.com's words."""
    code, message = _error_words(status, body)
    if status == 409 and message == _BOOKING_CONFLICT:
        return CalcomSlotUnavailable(message, status=status, code=code or _BOOKING_CONFLICT)
    if status == 400 and any(marker in message.lower() for marker in _SLOT_TAKEN_MARKERS):
        return CalcomSlotUnavailable(message, status=status, code=code)
    if status in (401, 403):
        # A revoked, mistyped or under-privileged key (Cal.com's throttler guard answers
        # "CustomThrottlerGuard - Invalid API Key": shared/contracts/README.md).
        return CalcomAuthFailed(message, status=status, code=code)
    if status == 429 or status >= 500:
        return CalcomUnavailable(message, status=status, code=code, retry_after=retry_after)
    return CalcomRejected(message, status=status, code=code)


def _error_words(status: int, body: Any) -> tuple[str | None, str]:
    """(code, message) from the envelope `{"error": {code, message}}` or a bare NestJS body."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return _text(error.get("code")), _text(error.get("message")) or f"HTTP {status}"
        message = _text(body.get("message"))
        if message:
            code = _text(error) or (message if message == _BOOKING_CONFLICT else None)
            return code, message
    return None, f"Cal.com answered HTTP {status}"


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # class-validator gives a list of messages
        return "; ".join(str(item) for item in value)
    return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds from `Retry-After` (delta-seconds or HTTP-date); None when absent or unreadable."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
