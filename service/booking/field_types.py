"""Integer fields that are not coerced where a coercion would change what we book or record.

pydantic's lax mode reads `"1002"`, `1002.0` and `true` as integers, and `true` reached Cal.com as
event type 1. Producers' bodies get `Strict()` integers. Upstream payloads (Cal.com's webhooks,
Retell's call object) keep lax numbers, since refusing a webhook over `"42"` would lose the
booking's news, and refuse only booleans, the coercion that changes meaning.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, Strict

# Strict() on the int alone, so datetimes, which JSON carries as strings, still parse when a dict
# from parse_json is validated (strict datetimes accept strings only in model_validate_json).
PositiveId = Annotated[int, Strict(), Field(gt=0, lt=2**63)]


def _not_a_boolean(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("a number is expected, not a boolean")
    return value


UpstreamInt = Annotated[int, BeforeValidator(_not_a_boolean)]
