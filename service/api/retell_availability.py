"""Retell's `check_availability` function: free times of a day (or a range), as one sentence.

Arguments: `event_type_id`, either `day` (`2025-10-10`) or `from` and `to` (ISO 8601; without an
offset they are read in `time_zone`), and `time_zone` (IANA, the caller's). The answer names up
to five free times in the caller's local time and lists the free slots for the LLM.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.api.retell_speech import local_slots, say_day, say_times
from service.booking.alternatives import MAX_SLOT_RANGE, SlotFinder
from service.booking.models import TimeZone
from service.calcom.port import CalcomError

AVAILABILITY_FUNCTION = "check_availability"
SPOKEN_TIMES = 5
LISTED_SLOTS = 20


class AvailabilityArgs(BaseModel):
    """What the LLM asks: which event type, which day or range, in which zone."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    event_type_id: int = Field(gt=0, lt=2**63, description="The Cal.com event type.")
    time_zone: TimeZone = Field(description="The caller's IANA time zone, e.g. Europe/Berlin.")
    day: date | None = Field(
        None, description="The day to look at (2025-10-10); or give from and to instead."
    )
    start_from: datetime | None = Field(
        None,
        alias="from",
        description="Start of the range, ISO 8601 (2025-10-10T08:00); without an offset it is "
        "read in time_zone.",
    )
    start_to: datetime | None = Field(
        None, alias="to", description="End of the range, at most 31 days after from."
    )

    @model_validator(mode="after")
    def _one_range(self) -> AvailabilityArgs:
        if self.day is None and (self.start_from is None or self.start_to is None):
            raise ValueError("give either `day` or both `from` and `to`")
        return self

    def window(self) -> tuple[datetime, datetime]:
        """[start, end] as aware datetimes: the whole local day, or from/to in the zone."""
        zone = ZoneInfo(self.time_zone)
        if self.start_from is not None and self.start_to is not None:
            start, end = (
                t if t.tzinfo is not None else t.replace(tzinfo=zone)
                for t in (self.start_from, self.start_to)
            )
            return start, end
        assert self.day is not None
        start = datetime.combine(self.day, time(0), tzinfo=zone)
        return start, datetime.combine(self.day + timedelta(days=1), time(0), tzinfo=zone)


async def answer_availability_call(slots: SlotFinder, args: dict[str, Any]) -> dict[str, Any]:
    """The free times the arguments ask about, as a sentence and a list."""
    try:
        parsed = AvailabilityArgs.model_validate(args)
    except ValidationError as e:
        names = sorted({str(err["loc"][0]) if err["loc"] else "args" for err in e.errors()})
        return _invalid(names, f"I could not use {', '.join(names)}")
    start, end = parsed.window()
    if not start < end or end - start > MAX_SLOT_RANGE:
        return _invalid(["from", "to"], "The range must be forward and at most 31 days")
    try:
        free = await slots.free(
            parsed.event_type_id, start=start, end=end, time_zone=parsed.time_zone
        )
    except CalcomError:
        return {
            "result": "try_again",
            "message": "The calendar did not answer. Please try again in a moment.",
            "slots": [],
        }
    local_start = start.astimezone(ZoneInfo(parsed.time_zone))
    if not free:
        return {
            "result": "none",
            "message": f"Nothing is free then ({say_day(local_start)}). "
            "Please ask the caller for another day.",
            "slots": [],
        }
    first_day = free[0].astimezone(ZoneInfo(parsed.time_zone)).date()
    shown = free[:SPOKEN_TIMES]
    times = say_times(shown, parsed.time_zone, on=first_day)
    verb = "is" if len(shown) == 1 else "are"
    return {
        "result": "available",
        "message": f"On {say_day(free[0].astimezone(ZoneInfo(parsed.time_zone)))} "
        f"{times} {verb} free.",
        "slots": local_slots(free[:LISTED_SLOTS], parsed.time_zone),
    }


def _invalid(fields: list[str], reason: str) -> dict[str, Any]:
    return {
        "result": "invalid",
        "message": f"{reason}. Please check with the caller and try again.",
        "invalid_args": fields,
    }
