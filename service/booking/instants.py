"""Instants every layer can compute with: aware, and inside the calendar once moved to UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

# A day inside Python's calendar at both ends, so that moving any offset to UTC and a default
# window of a day either side (`/v1/rejections`) cannot overflow: `0001-01-01T00:00:00+01:00` is
# a valid RFC 3339 string whose UTC instant Python cannot represent (OverflowError, a 500).
EARLIEST = datetime(1, 1, 3, tzinfo=UTC)
LATEST = datetime(9999, 12, 29, tzinfo=UTC)


def check_representable(value: datetime) -> datetime:
    """`value` unchanged when its UTC instant is between EARLIEST and LATEST, else ValueError."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError as e:
        raise ValueError("the time lies outside the years 1 to 9999 once moved to UTC") from e
    if not EARLIEST <= utc <= LATEST:
        raise ValueError(
            f"the time must lie between {EARLIEST.date().isoformat()} and "
            f"{LATEST.date().isoformat()} (UTC)"
        )
    return value


Instant = Annotated[AwareDatetime, AfterValidator(check_representable)]
