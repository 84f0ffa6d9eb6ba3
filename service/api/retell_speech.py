"""Times as a phone agent says them: in the caller's zone, the day only when it differs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo


def say_day(moment: datetime) -> str:
    """`Friday 10 October`."""
    return f"{moment:%A} {moment.day} {moment:%B}"


def say_times(starts: Sequence[datetime], time_zone: str, *, on: date | None = None) -> str:
    """`10:30 or 11:00`, `Thursday 9 October at 10:30 or 11:00` when the day is not `on`."""
    zone = ZoneInfo(time_zone)
    spoken = []
    for start in starts:
        local = start.astimezone(zone)
        when = f"{local:%H:%M}"
        spoken.append(when if local.date() == on else f"{say_day(local)} at {when}")
    if len(spoken) <= 1:
        return "".join(spoken)
    return f"{', '.join(spoken[:-1])} or {spoken[-1]}"


def local_slots(starts: Sequence[datetime], time_zone: str) -> list[dict[str, str]]:
    """The slots for the LLM, each in the caller's local time with its offset."""
    zone = ZoneInfo(time_zone)
    return [{"start": s.astimezone(zone).isoformat()} for s in starts]
