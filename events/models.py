"""Event models: one pydantic class per event type, registered by type name and schema version."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Final, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from events.errors import InvalidEvent, UnknownEventType

JsonDict = dict[str, Any]
Upcaster = Callable[[JsonDict], JsonDict]


class Event(BaseModel):
    """Base of every event payload. Subclasses set `type_name` and `schema_version`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type_name: ClassVar[str]
    schema_version: ClassVar[int] = 1


class EventMetadata(BaseModel):
    """Why an event was written and by whom: correlation, causation and producer."""

    model_config = ConfigDict(frozen=True, extra="allow")

    correlation_id: str | None = None
    causation_id: str | None = None
    producer: str | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended. Reuse `event_id` on a retry to make the append a no-op."""

    event: Event
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    metadata: EventMetadata = field(default_factory=EventMetadata)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored, with its place in its stream and in the global order."""

    position: int
    transaction_id: int
    stream_id: str
    version: int
    event_id: uuid.UUID
    type: str
    schema_version: int
    event: Event
    metadata: EventMetadata
    recorded_at: datetime


E = TypeVar("E", bound=type[Event])

_current: dict[str, type[Event]] = {}
_upcasters: dict[tuple[str, int], Upcaster] = {}


def register(cls: E) -> E:
    """Class decorator: make `cls` the current model for its type name."""
    existing = _current.get(cls.type_name)
    if existing is not None and existing is not cls:
        raise ValueError(f"event type {cls.type_name!r} is already registered to {existing!r}")
    _current[cls.type_name] = cls
    return cls


def upcaster(type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator: a function turning `type_name` data of `from_version` into the next version."""

    def decorate(fn: Upcaster) -> Upcaster:
        _upcasters[(type_name, from_version)] = fn
        return fn

    return decorate


def model_for(type_name: str) -> type[Event]:
    """The current model class for a type name."""
    try:
        return _current[type_name]
    except KeyError:
        raise UnknownEventType(type_name) from None


def decode(type_name: str, schema_version: int, data: JsonDict) -> Event:
    """Build the current model from stored data, upcasting older schema versions on the way."""
    cls = model_for(type_name)
    version = schema_version
    while version < cls.schema_version:
        step = _upcasters.get((type_name, version))
        if step is None:
            raise UnknownEventType(type_name, schema_version)
        data = step(data)
        version += 1
    if version != cls.schema_version:
        raise UnknownEventType(type_name, schema_version)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise InvalidEvent(
            f"stored {type_name} v{schema_version} does not fit its model: {e}"
        ) from e


# Integers outside 64 bits. orjson, which writes every JSON this service sends, parses them as
# floats and cannot serialise them as ints; pydantic's own JSON parser keeps them as ints. Only
# free-form fields can hold one (Retell's call_analysis, Cal.com's booking metadata, a guard's
# detail, metadata extras), and an event read back with such an int made every JSON answer
# carrying it fail (the audit timelines, the feed). Text with a run of 19 digits or more, which
# such a number needs, is parsed by orjson as it was when written; the rest by pydantic alone.
_LONG_DIGITS: Final = re.compile(r"\d{19}")

M = TypeVar("M", bound=BaseModel)


def validate_stored(cls: type[M], text: str) -> M:
    """`cls` from stored JSON text, its numbers as orjson reads them (see _LONG_DIGITS)."""
    if _LONG_DIGITS.search(text) is None:
        # The validator itself: `model_validate_json` calls it with the same (default) options
        # after Python-level argument checks that readers would pay once per event.
        model: M = cls.__pydantic_validator__.validate_json(text)
    else:
        model = cls.__pydantic_validator__.validate_python(orjson.loads(text))
    return model


def decode_json(type_name: str, schema_version: int, text: str) -> Event:
    """`decode` from the stored JSON text: pydantic parses and validates the current schema
    version in one pass; older versions are parsed, upcast and validated as `decode` does."""
    cls = model_for(type_name)
    if schema_version != cls.schema_version:
        return decode(type_name, schema_version, orjson.loads(text))
    try:
        return validate_stored(cls, text)
    except ValidationError as e:
        raise InvalidEvent(
            f"stored {type_name} v{schema_version} does not fit its model: {e}"
        ) from e


def registered_types() -> list[str]:
    """Every registered type name, sorted."""
    return sorted(_current)
