"""Whose Cal.com API key the service holds: `GET /v2/me`.

The key decides what booking-guard can see and do: listing bookings (recovery, reconciliation)
sees only the key's user's bookings, or a team's for a team admin (shared/contracts/README.md,
"Listing bookings"), so `check` and `serve` say whose key it is.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class CalcomAccount(BaseModel):
    """The user a Cal.com API key belongs to (MeOutput, trimmed)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    id: int
    email: str | None = Field(None, max_length=320)
    username: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=200)
    time_zone: str | None = Field(None, alias="timeZone", max_length=64)
    organization_id: int | None = Field(None, alias="organizationId")

    @classmethod
    def from_calcom(cls, data: dict[str, Any]) -> CalcomAccount:
        """Parse the `data` of `GET /v2/me`."""
        return cls.model_validate(data)

    def describe(self) -> str:
        """`jane@example.com (user 42, jane)`: who the key acts as, in one phrase."""
        who = self.email or self.username or "an unnamed user"
        extra = [f"user {self.id}"]
        if self.username and self.username != who:
            extra.append(self.username)
        if self.organization_id is not None:
            extra.append(f"organization {self.organization_id}")
        return f"{who} ({', '.join(extra)})"


@runtime_checkable
class AccountSource(Protocol):
    """Where the key's account is read from (HttpCalcomClient)."""

    async def get_me(self) -> CalcomAccount: ...
