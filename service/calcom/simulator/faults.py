"""Scripted faults of the Cal.com simulator: what goes wrong, for which request, in which order."""

from __future__ import annotations

from collections import deque
from typing import Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

FaultKind = Literal[
    "500",
    "502",
    "503",
    "429",
    "409",
    "delay",
    "timeout",
    "timeout_after_write",
    "drop",
    "drop_after_write",
    "malformed",
    "answer",
]
# What a `malformed` fault breaks in the booking(s) of the answer, after the request took effect.
Malformation = Literal["naive_created_at", "empty_uid", "long_uid", "nul_uid", "huge_id"]
Operation = Literal["create", "find", "get", "cancel", "reschedule", "event_type", "slots", "me"]
# Endpoints the simulator learned after faults were first scripted: only faults naming them
# apply, so a script of untargeted faults keeps hitting the bookings endpoints it was written for.
TARGETED_ONLY: frozenset[Operation] = frozenset({"event_type", "slots", "me"})

FAULT_SYNTAX = (
    "KIND[:ARG][@OPERATION] with KIND one of 500, 502, 503, 429 (ARG: Retry-After seconds), "
    "409, delay (ARG: milliseconds), timeout, timeout_after_write (ARG: seconds to hang), drop, "
    "drop_after_write, malformed (ARG: naive_created_at, empty_uid, long_uid, nul_uid, huge_id: "
    "the request takes effect, its answer carries that unusable field), answer (ARG: a JSON "
    "body: the request takes effect, and Cal.com answers 201 with that body instead); "
    "OPERATION one of create, find, get, cancel, reschedule, event_type, slots, me"
)
OPERATIONS: frozenset[str] = frozenset(get_args(Operation))


class Fault(BaseModel):
    """One scripted misbehaviour, consumed by the first request it applies to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    # Only requests of this operation consume the fault; None: any Cal.com request.
    operation: Operation | None = None
    # 429: the Retry-After header to send; None sends none, as Cal.com does.
    retry_after: int | None = Field(None, ge=0)
    # delay: how long to wait before answering normally.
    delay_ms: int = Field(0, ge=0)
    # timeout*: how long to hang at most (the simulator releases hung requests when it stops).
    hang_seconds: float = Field(60.0, gt=0)
    # malformed: which field of the answer's booking(s) becomes unusable.
    malformation: Malformation = "naive_created_at"
    # answer: the body Cal.com answers with (any JSON, or not JSON at all; bytes that are not
    # UTF-8 kept as surrogate escapes, so the fault lists as JSON), under this status, and
    # whether the request took effect first (a proxy garbling a real answer) or never arrived.
    answer_body: str = ""
    answer_status: int = Field(201, ge=200, le=599)
    answer_writes: bool = True

    @property
    def writes_first(self) -> bool:
        """Whether the request takes effect before the fault hides the answer."""
        if self.kind == "answer":
            return self.answer_writes
        return self.kind in ("timeout_after_write", "drop_after_write", "malformed")


def parse_fault(text: str) -> Fault:
    """A fault from its command-line spelling, e.g. `500`, `429:2`, `delay:300`, `drop@create`."""
    if text.strip().startswith("answer:"):
        return _parse_answer(text.strip())
    spec, _, operation = text.strip().partition("@")
    kind, _, arg = spec.partition(":")
    fields: dict[str, object] = {"kind": kind}
    if operation:
        fields["operation"] = operation
    if arg:
        key = {"429": "retry_after", "delay": "delay_ms", "malformed": "malformation"}.get(
            kind, "hang_seconds"
        )
        if kind not in ("429", "delay", "timeout", "timeout_after_write", "malformed"):
            raise ValueError(f"fault {kind!r} takes no argument, got {text!r}; {FAULT_SYNTAX}")
        fields[key] = arg
    try:
        return Fault.model_validate(fields)
    except ValidationError as e:
        raise ValueError(f"bad fault {text!r}: expected {FAULT_SYNTAX}") from e


def _parse_answer(text: str) -> Fault:
    # The JSON may hold an `@` (an e-mail address): only a known operation after the last one
    # targets the fault.
    body, at, operation = text.removeprefix("answer:").rpartition("@")
    if not at or operation not in OPERATIONS:
        body, operation = text.removeprefix("answer:"), ""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"bad fault {text!r}: the answer is not JSON; {FAULT_SYNTAX}") from e
    fields: dict[str, object] = {"kind": "answer", "answer_body": body}
    if operation:
        fields["operation"] = operation
    return Fault.model_validate(fields)


class FaultQueue:
    """Faults in the order they were scripted; each request takes the first that applies to it."""

    def __init__(self, faults: list[Fault] | None = None) -> None:
        self._faults: deque[Fault] = deque(faults or [])

    def add(self, *faults: Fault) -> None:
        """Append faults to the end of the script."""
        self._faults.extend(faults)

    def take(self, operation: Operation) -> Fault | None:
        """Remove and return the first fault for `operation`, if any."""
        untargeted_applies = operation not in TARGETED_ONLY
        for fault in self._faults:
            if fault.operation == operation or (fault.operation is None and untargeted_applies):
                self._faults.remove(fault)
                return fault
        return None

    def pending(self) -> list[Fault]:
        """The faults not consumed yet, in order."""
        return list(self._faults)

    def clear(self) -> None:
        """Forget every pending fault."""
        self._faults.clear()


def malformed(booking: dict[str, Any], malformation: Malformation) -> dict[str, Any]:
    """`booking` (Cal.com's JSON) with one field present but unusable, as a broken Cal.com or a
    proxy in between might answer."""
    broken = dict(booking)
    if malformation == "naive_created_at":
        broken["createdAt"] = str(broken.get("createdAt", "2025-10-06T09:04:27.000Z"))[:19]
    elif malformation == "empty_uid":
        broken["uid"] = ""
    elif malformation == "long_uid":
        broken["uid"] = "u" * 10_240
    elif malformation == "nul_uid":
        broken["uid"] = f"{broken.get('uid', 'uid')}\x00"
    else:
        broken["id"] = 2**63
    return broken
