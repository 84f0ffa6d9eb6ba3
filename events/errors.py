"""Errors the event store raises; each names what the caller can do next."""

from __future__ import annotations


class EventStoreError(Exception):
    """Base class for every error raised by the ledger."""


class WrongExpectedVersion(EventStoreError):
    """The stream is not at the version the caller expected: reload it and decide again."""

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, the append expected {expected}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class EventIdConflict(EventStoreError):
    """An event id in the batch is already stored with other content: a bug, not a retry."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(
            f"an event id appended to {stream_id!r} is already stored with other content"
        )
        self.stream_id = stream_id


class UnknownEventType(EventStoreError):
    """No model is registered for that type name and schema version."""

    def __init__(self, type_name: str, schema_version: int | None = None) -> None:
        which = type_name if schema_version is None else f"{type_name} v{schema_version}"
        super().__init__(f"unknown event type {which}")
        self.type_name = type_name
        self.schema_version = schema_version


class InvalidEvent(EventStoreError):
    """An event's payload does not fit its model, or is too large to store."""


class DatabaseUnavailable(EventStoreError):
    """PostgreSQL cannot be reached right now; retrying later may succeed."""
