"""Event models: one pydantic class per event type, registered by type name and schema version."""

from __future__ import annotations

import functools
import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import UnionType
from typing import Any, ClassVar, Final, NamedTuple, TypeVar, Union, get_args, get_origin

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


class RecordedEvent(NamedTuple):
    """An event as stored, with its place in its stream and in the global order.

    A NamedTuple rather than a frozen dataclass: readers build one per event, and a frozen
    dataclass's `__init__` sets each of its ten fields through `object.__setattr__` (~1.2 µs an
    event, a fifth of decoding one; bench/README.md, issue 16 item 6), a tuple in one step
    (~0.3 µs). Immutable all the same. Not orderable: a tuple's order would be by position,
    and the global order is (transaction_id, position) (events/reads.py).
    """

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

    def __lt__(self, other: object) -> bool:
        return NotImplemented

    def __le__(self, other: object) -> bool:
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        return NotImplemented


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
# floats and cannot serialise them as ints; pydantic's own JSON parser keeps them as ints. An
# event read back with such an int made every JSON answer carrying it fail (the audit
# timelines, the feed). Typed fields cannot hold one (every door parses with orjson, and strict
# ints refuse its float); only free-form values can (a field holding `Any`, extra fields). So a
# model is validated from the text in one pass, and only its free-form values are looked at
# (on most events a field or two, usually empty); when one holds such an int, the text is parsed
# by orjson, as it was when written. A regex over the whole text cost three validations.
_ORJSON_INTS: Final = range(-(2**63), 2**64)

M = TypeVar("M", bound=BaseModel)
_Path = tuple[str, ...]


def _paths_in(annotation: Any) -> list[_Path] | None:
    """Where in a value of `annotation` free-form values can be: [()] for the value itself;
    None when they can hide where attribute paths cannot reach (models inside a container)."""
    if annotation is Any:
        return [()]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        inner = _free_form_paths(annotation)
        return None if inner is None else list(inner)
    paths: list[_Path] = []
    for argument in get_args(annotation):
        found = _paths_in(argument)
        if found is None:
            return None
        if found and get_origin(annotation) not in (Union, UnionType):
            # Inside a container (dict[str, Any], list[...]): the whole container is walked,
            # unless a model hides in it.
            if found != [()]:
                return None
            return [()]
        paths.extend(found)
    return paths


@functools.cache
def _free_form_paths(cls: type[BaseModel]) -> tuple[_Path, ...] | None:
    """Attribute paths to the free-form values of `cls`; None when they cannot all be named."""
    extra = cls.model_config.get("extra") == "allow"
    paths: list[_Path] = [("__pydantic_extra__",)] if extra else []
    for name, info in cls.model_fields.items():
        found = _paths_in(info.annotation)
        if found is None:
            return None
        paths.extend((name, *path) for path in found)
    return tuple(paths)


def _beyond_64_bits(value: object) -> bool:
    if type(value) is int:
        return value not in _ORJSON_INTS
    if not value:  # most free-form values are empty or None
        return False
    if isinstance(value, dict):
        return any(_beyond_64_bits(item) for item in value.values())
    if isinstance(value, list):
        return any(_beyond_64_bits(item) for item in value)
    return False


@functools.cache
def _free_form_getters(cls: type[BaseModel]) -> tuple[operator.attrgetter[Any], ...] | None:
    paths = _free_form_paths(cls)
    return None if paths is None else tuple(operator.attrgetter(".".join(p)) for p in paths)


def validate_stored(cls: type[M], text: str) -> M:
    """`cls` from stored JSON text, its numbers as orjson reads them (see _ORJSON_INTS)."""
    getters = _free_form_getters(cls)
    if getters is not None:
        # The validator itself: `model_validate_json` calls it with the same (default) options
        # after Python-level argument checks that readers would pay once per event.
        model: M = cls.__pydantic_validator__.validate_json(text)
        for get in getters:
            try:
                value = get(model)
            except AttributeError:  # an optional model on the way is None
                continue
            if _beyond_64_bits(value):
                break
        else:
            return model
    parsed: M = cls.__pydantic_validator__.validate_python(orjson.loads(text))
    return parsed


def decode_json(type_name: str, schema_version: int, text: str) -> Event:
    """`decode` from the stored JSON text: pydantic parses and validates the current schema
    version in one pass; older versions are parsed, upcast and validated as `decode` does."""
    return stored_decoder(type_name, schema_version)(text)


StoredDecoder = Callable[[str], Event]


@functools.cache
def stored_decoder(type_name: str, schema_version: int) -> StoredDecoder:
    """`decode_json` for one (type, schema version), with every per-type decision taken once:
    readers call it per event. Raises UnknownEventType as `decode` does."""
    cls = model_for(type_name)
    if schema_version != cls.schema_version:  # upcast, or UnknownEventType per event
        return lambda text: decode(type_name, schema_version, orjson.loads(text))

    def decode_current(text: str) -> Event:
        try:
            return validate_stored(cls, text)
        except ValidationError as e:
            raise _does_not_fit(type_name, schema_version, e) from e

    return decode_current


def _does_not_fit(type_name: str, schema_version: int, error: ValidationError) -> InvalidEvent:
    return InvalidEvent(f"stored {type_name} v{schema_version} does not fit its model: {error}")


def registered_types() -> list[str]:
    """Every registered type name, sorted."""
    return sorted(_current)
