"""The client's side of Cal.com's rate limit: ask the budget before each request, tell it after.

Cal.com allows 120 requests per 60 s per API key, counts every request, blocks the key for 60 s
after the first one over, and sends no Retry-After, only `X-RateLimit-Limit-Default`,
`X-RateLimit-Remaining-Default` and `X-RateLimit-Reset-Default` (seconds until the window or
the block ends) on every answer (shared/contracts/README.md, "Rate limit (v2 throttler)").
A request sent into a spent budget is doomed and, worse, extends nothing but our wait, so the
client asks a `CalcomBudget` first; the one booking-guard runs is shared by every process on the
database (service/booking/calcom_budget.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from service.calcom.port import CalcomUnavailable

LIMIT_HEADER = "X-RateLimit-Limit-Default"
REMAINING_HEADER = "X-RateLimit-Remaining-Default"
RESET_HEADER = "X-RateLimit-Reset-Default"


class CalcomRateLimited(CalcomUnavailable):
    """The key's budget is spent: not sent, try again after `retry_after` seconds."""


@dataclass(frozen=True, slots=True)
class Announcement:
    """What one answer of Cal.com said about the key's budget (None: not said)."""

    status: int
    limit: int | None
    remaining: int | None
    reset_seconds: float | None

    @classmethod
    def from_headers(cls, status: int, headers: Mapping[str, str]) -> Announcement:
        return cls(
            status=status,
            limit=_number(headers.get(LIMIT_HEADER)),
            remaining=_number(headers.get(REMAINING_HEADER)),
            reset_seconds=_number(headers.get(RESET_HEADER)),
        )


class CalcomBudget(Protocol):
    """Requests this API key may still send to Cal.com."""

    async def take(self) -> None:
        """Spend one request, or raise CalcomRateLimited without waiting."""

    async def observe(self, announcement: Announcement) -> None:
        """Learn from an answer: the announced limit, a spent window, a 429's block."""


def reset_seconds(headers: Mapping[str, str]) -> float | None:
    """`X-RateLimit-Reset-Default` in seconds, when Cal.com sent one."""
    value = _number(headers.get(RESET_HEADER))
    return None if value is None else float(value)


def _number(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(float(text))
    except ValueError:
        return None
    return value if value >= 0 else None
