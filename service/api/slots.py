"""`GET /v1/slots` and the `alternatives` of a refusal: free times, from Cal.com."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.api.errors import error_response, validation_detail
from service.api.keys import SLOT_FINDER
from service.booking.alternatives import MAX_SLOT_RANGE, SlotFinder
from service.booking.models import TimeZone
from service.calcom.port import CalcomError, CalcomRejected


def utc_text(moment: datetime) -> str:
    """RFC 3339 in UTC with `Z`, as the contract writes times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def slot_list(starts: list[datetime]) -> list[dict[str, str]]:
    return [{"start": utc_text(s)} for s in starts]


async def alternatives_for(finder: SlotFinder, event_type_id: int, wanted: datetime) -> list[Any]:
    """The `alternatives` of a 409: looked up now, so a replay offers what is free now."""
    return slot_list(await finder.alternatives(event_type_id, wanted))


class SlotQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    event_type_id: int = Field(gt=0, lt=2**63)
    start_from: AwareDatetime = Field(alias="from")
    start_to: AwareDatetime = Field(alias="to")
    time_zone: TimeZone = "UTC"

    @model_validator(mode="after")
    def _bounded(self) -> SlotQuery:
        if self.start_to <= self.start_from:
            raise ValueError("`to` must be after `from`")
        if self.start_to - self.start_from > MAX_SLOT_RANGE:
            raise ValueError(f"the range is at most {MAX_SLOT_RANGE.days} days")
        return self


async def list_slots(request: web.Request) -> web.Response:
    """GET /v1/slots?event_type_id=&from=&to=&time_zone="""
    try:
        query = SlotQuery.model_validate(dict(request.query))
    except ValidationError as e:
        return error_response(422, "invalid_query", validation_detail(e))
    try:
        starts = await request.app[SLOT_FINDER].free(
            query.event_type_id,
            start=query.start_from,
            end=query.start_to,
            time_zone=query.time_zone,
        )
    except CalcomRejected as e:
        # Cal.com refused the question (an unknown event type is its 404): the query is at fault.
        return error_response(
            422, "invalid_query", [{"field": "event_type_id", "message": e.message}]
        )
    except CalcomError as e:
        return error_response(502, "calcom_unavailable", e.message, headers={"Retry-After": "5"})
    return web.json_response({"slots": slot_list(starts)})


def add_slot_routes(app: web.Application) -> None:
    app.router.add_get("/v1/slots", list_slots)
