"""Reading the log fast, for replay: large batches, decoded as cheaply as each use allows.

`read_batch` gives RecordedEvents as `read_all` does (events/reads.py, `to_recorded`), in larger
batches. `read_data_batch` skips the models and most columns: it gives each event's data as
plain JSON values, for projections that write rows with COPY. Stored data was serialised from
the current model, so only old schema versions need `decode` and its upcasters (and are dumped
back to JSON). The order and horizon are `read_all`'s. Replay's speed is in the columns: each
query names only what its reader decodes, as text where the reader parses the JSON itself.

Every read is a merge of one ordered index scan per type (`_ordered`): `type = ANY(...)` made
PostgreSQL walk the whole log in `events_transaction_order` and drop the other types' rows
(EXPLAIN ANALYZE on the 1,000,002-event log: 140,000 rows read and dropped for 10,000
rejections), where `events_type_order` gives each type's rows in the horizon's order.

`insert_data_batch` is for projections whose rows are each one event's fields: PostgreSQL fills
the table from the batch itself (`INSERT … SELECT`), so the data never leaves the server.

`behind_horizon=False` is only for a caller that holds a lock keeping every writer of these
types out (replay's catch-up of an inline projection under its table lock): then every
transaction that could still add such events is waiting, and all committed ones may be read.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from events.database import Connection
from events.models import RecordedEvent, decode, model_for
from events.reads import COLUMNS, Cursor, to_recorded

_COUNT = "SELECT count(*) FROM events WHERE type = ANY($1::text[])"


async def count(connection: Connection, types: Sequence[str]) -> int:
    """How many events of `types` the log holds (committed, whatever the horizon)."""
    total: int = await connection.fetchval(_COUNT, list(types))
    return total


_HORIZON = "AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
_DATA_COLUMNS = "position, transaction_id, event_id, type, schema_version, data::text AS data"


# Up to a fixed cursor ($5, $6): a bound taken behind the horizon (`bound`), so no horizon.
UPTO = "(transaction_id, position) <= ($5::xid8, $6::bigint)"


def _ordered(
    columns: str, types: int, *, behind_horizon: bool, upto: bool = False, where: str = ""
) -> str:
    """Up to $4 events of the $3 types after ($1, $2), in (transaction id, position) order:
    a Merge Append of one `events_type_order` scan per type, each stopping at $4 rows.
    With `upto`, only events up to ($5, $6); `where` is a further condition on each row."""
    horizon = f"AND {UPTO}" if upto else _HORIZON if behind_horizon else ""
    more = f"AND ({where})" if where else ""
    scans = "\n UNION ALL\n".join(
        f"""(SELECT {columns} FROM events
   WHERE type = ($3::text[])[{n}]
     AND (transaction_id, position) > ($1::xid8, $2::bigint)
     {horizon} {more}
   ORDER BY transaction_id, position
   LIMIT $4)"""
        for n in range(1, types + 1)
    )
    return f"SELECT * FROM (\n {scans}\n) AS logged ORDER BY transaction_id, position LIMIT $4"


_QUERIES: dict[tuple[str, int, bool, bool, str], str] = {}


def _query(
    columns: str, types: Sequence[str], behind_horizon: bool, upto: bool = False, where: str = ""
) -> str:
    if not types:
        raise ValueError("a read needs at least one event type")
    key = (columns, len(types), behind_horizon, upto, where)
    query = _QUERIES.get(key)
    if query is None:
        query = _QUERIES[key] = _ordered(
            columns, len(types), behind_horizon=behind_horizon, upto=upto, where=where
        )
    return query


_BOUND = f"""
SELECT last.transaction_id, last.position
  FROM unnest($1::text[]) AS t(type),
       LATERAL (SELECT transaction_id, position FROM events
                 WHERE type = t.type {_HORIZON}
                 ORDER BY transaction_id DESC, position DESC LIMIT 1) AS last
 ORDER BY last.transaction_id DESC, last.position DESC LIMIT 1
"""


def logged_upto(types: str, transaction_id: str, position: str) -> str:
    """A query of the events of the `types` parameter up to the cursor in the two parameters
    named (a `bound`), at any schema version: position, transaction_id, type, schema_version
    and data (jsonb), in no order. For a replayer's statements that run in the server."""
    return f"""SELECT position, transaction_id, type, schema_version, data FROM events
 WHERE type = ANY({types}::text[])
   AND (transaction_id, position) <= ({transaction_id}::xid8, {position}::bigint)"""


async def bound(connection: Connection, types: Sequence[str]) -> Cursor | None:
    """The last event of `types` behind the transaction horizon now (None: there is none).

    Every transaction that could add an event up to it has ended, so reads `upto` it see one
    fixed set of events however long after they run: two passes over the log that both stop
    there read the same log, and what comes after it is the caller's to catch up."""
    row = await connection.fetchrow(_BOUND, list(types))
    return None if row is None else Cursor(row["transaction_id"], row["position"])


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
    upto: Cursor | None = None,
    where: str = "",
) -> list[LoggedData]:
    """Like `read_batch`, with each event as JSON data instead of a model. With `upto` (a
    `bound`), only events up to it; `where`, a condition on the events table's columns, keeps
    only the rows it holds for (a replayer's split: the rest it wrote in the server)."""
    query = _query(_DATA_COLUMNS, types, behind_horizon, upto is not None, where)
    args: list[Any] = [after.transaction_id, after.position, list(types), limit]
    if upto is not None:
        args += [upto.transaction_id, upto.position]
    rows = await connection.fetch(query, *args)
    return _logged(rows, types)


def _logged(rows: Sequence[Any], types: Sequence[str]) -> list[LoggedData]:
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


_JSONB_COLUMNS = "position, transaction_id, event_id, type, schema_version, data"


class InsertedBatch(NamedTuple):
    """What `insert_data_batch` read: how many events, the last one's cursor (None when there
    were none), and the positions of those at an older schema version, which it left alone."""

    events: int
    last: Cursor | None
    older: list[int]


async def insert_data_batch(
    connection: Connection,
    *,
    after: Cursor,
    types: Sequence[str],
    limit: int,
    insert: str,
    behind_horizon: bool = True,
) -> InsertedBatch:
    """Run `insert` over the batch `read_data_batch` would read, inside PostgreSQL.

    `insert` is an `INSERT … SELECT … FROM logged`: `logged` holds the batch's events at their
    type's current schema version (position, transaction_id, event_id, type, data as jsonb), in
    no particular order. The others need their upcasters: read them with `read_data_at`.
    """
    current = [model_for(name).schema_version for name in types]
    statement = f"""
WITH batch AS MATERIALIZED (
{_query(_JSONB_COLUMNS, types, behind_horizon)}
), logged AS (
SELECT b.position, b.transaction_id, b.event_id, b.type, b.data
  FROM batch AS b JOIN unnest($3::text[], $5::int[]) AS c(type, version)
    ON c.type = b.type AND c.version = b.schema_version
), inserted AS (
{insert}
)
SELECT (SELECT count(*) FROM batch) AS events,
       last.transaction_id, last.position,
       ARRAY(SELECT b.position FROM batch AS b
              WHERE NOT EXISTS (SELECT FROM logged AS l WHERE l.position = b.position)
              ORDER BY b.transaction_id, b.position) AS older
  FROM (SELECT NULL) AS one
  LEFT JOIN (SELECT transaction_id, position FROM batch
              ORDER BY transaction_id DESC, position DESC LIMIT 1) AS last ON true
"""
    row = await connection.fetchrow(
        statement, after.transaction_id, after.position, list(types), limit, current
    )
    assert row is not None  # the outer SELECT always makes one row
    last = None if row["position"] is None else Cursor(row["transaction_id"], row["position"])
    return InsertedBatch(row["events"], last, list(row["older"]))


_DATA_AT = f"""
SELECT {_DATA_COLUMNS} FROM events
 WHERE position = ANY($1::bigint[])
 ORDER BY transaction_id, position
"""


async def read_data_at(
    connection: Connection, positions: Sequence[int], types: Sequence[str]
) -> list[LoggedData]:
    """The events at `positions` (of `types`), in log order, as `read_data_batch` gives them."""
    rows = await connection.fetch(_DATA_AT, list(positions))
    return _logged(rows, types)


async def read_batch(
    connection: Connection,
    *,
    after: Cursor,
    types: Sequence[str],
    limit: int,
    behind_horizon: bool = True,
) -> list[RecordedEvent]:
    """Up to `limit` events of `types` after `after`, in (transaction id, position) order."""
    query = _query(COLUMNS, types, behind_horizon)
    rows = await connection.fetch(query, after.transaction_id, after.position, list(types), limit)
    return to_recorded(rows)
