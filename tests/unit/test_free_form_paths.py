"""Where an event can hold free-form JSON: the only values a stored number beyond 64 bits can be
in, and so the only ones read back are looked at (events/models.py, validate_stored)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from events import booking, calls, models

_REGISTERED = (booking, calls)  # imported for their events' registration


class _Inner(BaseModel):
    anything: dict[str, Any] = {}


class _Hidden(BaseModel):
    items: list[_Inner] = []


def test_every_free_form_value_of_the_ledger_is_named() -> None:
    paths = {
        name: models._free_form_paths(models.model_for(name))
        for name in (
            "BookingRequested",
            "BookingRejected",
            "CalcomBookingReceived",
            "RetellCallAnalyzed",
            "BookingConfirmed",
        )
    }
    assert paths == {
        "BookingRequested": (("options", "booking_fields"),),
        "BookingRejected": (("detail",),),
        "CalcomBookingReceived": (("booking_metadata",), ("attendees",)),
        "RetellCallAnalyzed": (("call_analysis",),),
        "BookingConfirmed": (),
    }
    assert models._free_form_paths(models.EventMetadata) == (("__pydantic_extra__",),)


def test_free_form_values_a_path_cannot_reach_read_through_orjson() -> None:
    assert models._free_form_paths(_Hidden) is None
    huge = 123456789012345678901
    text = f'{{"items": [{{"anything": {{"n": {huge}}}}}]}}'
    read = models.validate_stored(_Hidden, text)
    assert read.items[0].anything == {"n": float(huge)}
    inner = models.validate_stored(_Inner, f'{{"anything": {{"n": [{huge}]}}}}')
    assert inner.anything == {"n": [float(huge)]}
