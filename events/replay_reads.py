"""Reading the log fast, for replay: large batches, decoded as cheaply as each use allows.

`read_batch` gives RecordedEvents like `read_all` (events/reads.py), but pydantic parses the
stored text itself and a batch parses each distinct metadata value once. `read_data_batch` skips
the models and most columns: it gives each event's data as plain JSON values, for projections
that write rows with COPY. Stored data was serialised from the current model, so only old schema
versions need `decode` and its upcasters (and are dumped back to JSON). The order and horizon are
`read_all`'s. Replay's speed is in the columns: each query names only what its reader decodes,
as text where the reader parses the JSON itself.

`behind_horizon=False` is only for a caller that holds a lock keeping every writer of these
types out (replay's catch-up of an inline projection under its table lock): then every
transaction that could still add such events is waiting, and all committed ones may be read.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from events.database import Connection
from events.errors import InvalidEvent
from events.models import Event, EventMetadata, RecordedEvent, decode, model_for
from events.reads import Cursor

_COUNT = "SELECT count(*) FROM events WHERE type = ANY($1::text[])"


async def count(connection: Connection, types: Sequence[str]) -> int:
    """How many events of `types` the log holds (committed, whatever the horizon)."""
    total: int = await connection.fetchval(_COUNT, list(types))
    return total


_DATA_BEHIND_HORIZON = """
SELECT position, transaction_id, event_id, type, schema_version, data::text AS data FROM events
 WHERE type = ANY($3::text[])
   AND (transaction_id, position) > ($1::xid8, $2::bigint)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY transaction_id, position
 LIMIT $4
"""

_DATA_COMMITTED = """
SELECT position, transaction_id, event_id, type, schema_version, data::text AS data FROM events
 WHERE type = ANY($3::text[])
   AND (transaction_id, position) > ($1::xid8, $2::bigint)
 ORDER BY transaction_id, position
 LIMIT $4
"""


class LoggedData(NamedTuple):
    """An event's place and its data at the current schema version, as JSON values."""

    transaction_id: int
    position: int
    event_id: uuid.UUID
    type: str
    data: dict[str, Any]


async def read_data_batch(
    connection: Connection,
    *,
    after: Cursor,
    types: Sequence[str],
    limit: int,
    behind_horizon: bool = True,
) -> list[LoggedData]:
    """Like `read_batch`, with each event as JSON data instead of a model."""
    query = _DATA_BEHIND_HORIZON if behind_horizon else _DATA_COMMITTED
    rows = await connection.fetch(query, after.transaction_id, after.position, list(types), limit)
    current = {name: model_for(name).schema_version for name in types}
    return [
        LoggedData(
            row["transaction_id"],
            row["position"],
            row["event_id"],
            row["type"],
            orjson.loads(row["data"])
            if row["schema_version"] == current[row["type"]]
            else decode(row["type"], row["schema_version"], orjson.loads(row["data"])).model_dump(
                mode="json"
            ),
        )
        for row in rows
    ]


_COLUMNS = (
    "position, transaction_id, stream_id, version, event_id, type, schema_version,"
    " data::text AS data, metadata::text AS metadata, recorded_at"
)

_READ_BEHIND_HORIZON = f"""
SELECT {_COLUMNS} FROM events
 WHERE type = ANY($3::text[])
   AND (transaction_id, position) > ($1::xid8, $2::bigint)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY transaction_id, position
 LIMIT $4
"""

_READ_COMMITTED = f"""
SELECT {_COLUMNS} FROM events
 WHERE type = ANY($3::text[])
   AND (transaction_id, position) > ($1::xid8, $2::bigint)
 ORDER BY transaction_id, position
 LIMIT $4
"""


async def read_batch(
    connection: Connection,
    *,
    after: Cursor,
    types: Sequence[str],
    limit: int,
    behind_horizon: bool = True,
) -> list[RecordedEvent]:
    """Up to `limit` events of `types` after `after`, in (transaction id, position) order."""
    query = _READ_BEHIND_HORIZON if behind_horizon else _READ_COMMITTED
    rows = await connection.fetch(query, after.transaction_id, after.position, list(types), limit)
    metadata: dict[str, EventMetadata] = {}
    events: list[RecordedEvent] = []
    for row in rows:
        meta_text: str = row["metadata"]
        meta = metadata.get(meta_text)
        if meta is None:
            meta = metadata[meta_text] = EventMetadata.model_validate_json(meta_text)
        events.append(
            RecordedEvent(
                position=row["position"],
                transaction_id=row["transaction_id"],
                stream_id=row["stream_id"],
                version=row["version"],
                event_id=row["event_id"],
                type=row["type"],
                schema_version=row["schema_version"],
                event=_decode(row["type"], row["schema_version"], row["data"]),
                metadata=meta,
                recorded_at=row["recorded_at"],
            )
        )
    return events


def _decode(type_name: str, schema_version: int, text: str) -> Event:
    cls = model_for(type_name)
    if schema_version != cls.schema_version:
        return decode(type_name, schema_version, orjson.loads(text))
    try:
        return cls.model_validate_json(text)
    except ValidationError as e:
        raise InvalidEvent(
            f"stored {type_name} v{schema_version} does not fit its model: {e}"
        ) from e
