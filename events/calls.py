"""Events of a phone call as Retell reports it (lifecycle webhooks), on the call's own stream.

Each carries `call_id`, so the audit timeline of a call shows them beside its booking attempts.
Their data comes only from the webhook body, never from the clock: a redelivery builds the same
event, and the store treats the re-append of the same event id as a no-op.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events.database import Executor
from events.models import Event, register


class RetellCallEvent(Event):
    """What every Retell lifecycle event records about the call (not registered itself)."""

    call_id: str
    agent_id: str | None = None
    call_status: str | None = None
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    # Retell's own times, in milliseconds since the epoch.
    start_timestamp: int | None = None
    end_timestamp: int | None = None


@register
class RetellCallStarted(RetellCallEvent):
    """Retell's `call_started` webhook."""

    type_name = "RetellCallStarted"


@register
class RetellCallEnded(RetellCallEvent):
    """Retell's `call_ended` webhook (the transcript is not kept: it is not ours to audit)."""

    type_name = "RetellCallEnded"

    disconnection_reason: str | None = None


@register
class RetellCallAnalyzed(RetellCallEvent):
    """Retell's `call_analyzed` webhook, with its post-call analysis."""

    type_name = "RetellCallAnalyzed"

    disconnection_reason: str | None = None
    call_analysis: dict[str, Any] | None = None


def call_stream(call_id: str) -> str:
    """The stream holding one phone call's lifecycle events."""
    return f"call-{call_id}"


# Every place the ledger names a Retell agent: the lifecycle events' `agent_id`, and the intent
# of a booking made through a Retell function call (its metadata's `retell_agent_id`).
_AGENTS_SEEN = """
SELECT DISTINCT agent_id FROM (
    SELECT data ->> 'agent_id' AS agent_id
      FROM events WHERE type = ANY($1::text[]) AND recorded_at >= $2
    UNION ALL
    SELECT data -> 'metadata' ->> 'retell_agent_id'
      FROM events WHERE type = 'BookingRequested' AND recorded_at >= $2
) seen
WHERE agent_id IS NOT NULL AND agent_id <> ''
ORDER BY agent_id
"""


async def retell_agents_seen(executor: Executor, *, since: datetime) -> list[str]:
    """The Retell agent ids the ledger recorded since `since`, sorted."""
    types = [RetellCallStarted.type_name, RetellCallEnded.type_name, RetellCallAnalyzed.type_name]
    rows = await executor.fetch(_AGENTS_SEEN, types, since)
    return [str(row["agent_id"]) for row in rows]
