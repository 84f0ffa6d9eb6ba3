"""The one place an attempt's outcome becomes an HTTP status (STYLE.md 18).

The booking room returns outcomes; what each one is on the wire is decided here, for the
booking API, its replays and its asynchronous submissions alike (DESIGN.md §6).
"""

from __future__ import annotations

from typing import Final

from service.booking.models import AttemptOutcome

# Retryable failures by reason: Cal.com rate-limited us, timed out, refused our key (a bad
# gateway: the fault is between us and Cal.com, not in the producer's request), or erred.
_FAILED_RETRYABLE: Final = {
    "calcom_rate_limited": 503,
    "calcom_timeout": 504,
    "calcom_auth_failed": 502,
}


def http_status(outcome: AttemptOutcome) -> int:
    """201 confirmed or pending_confirmation (200 when the call already held it), 200 for an
    answer whose booking was cancelled or declined since, 409 rejected, 422/5xx failed, 202
    pending."""
    match outcome.status:
        case "confirmed" | "pending_confirmation":
            return 200 if outcome.held else 201
        case "cancelled" | "declined":
            return 200
        case "rejected":
            return 409
        case "failed" if not outcome.retryable:
            return 422
        case "failed":
            return _FAILED_RETRYABLE.get(outcome.reason or "", 502)
        case _:
            return 202
