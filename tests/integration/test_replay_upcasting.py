"""Old event versions are upcast on read: a raw v1 row comes back as the current v2 model."""

from __future__ import annotations

import uuid

import asyncpg

from events import replay_reads
from events.models import Event, JsonDict, register, upcaster
from events.store import START, EventStore
from tests.integration.test_projector import horizon_passed


@register
class RoomBooked(Event):
    """v1 had `name`; v2 splits it into `first_name` and `last_name`."""

    type_name = "TestRoomBooked"
    schema_version = 2

    room: str
    first_name: str
    last_name: str


@upcaster("TestRoomBooked", from_version=1)
def _split_name(data: JsonDict) -> JsonDict:
    first, _, last = data.pop("name").partition(" ")
    return {**data, "first_name": first, "last_name": last}


async def test_a_stored_v1_event_is_read_back_as_v2(db: asyncpg.Pool) -> None:
    await db.execute(
        "INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)"
        " VALUES ('rooms', 1, $1, 'TestRoomBooked', 1, $2, '{}')",
        uuid.uuid4(),
        {"room": "blue", "name": "Hansi Sputer"},
    )
    expected = RoomBooked(room="blue", first_name="Hansi", last_name="Sputer")
    store = EventStore(db)
    await horizon_passed(db)
    [from_stream] = await store.read_stream("rooms")
    [from_feed] = await store.read_all()
    async with db.acquire() as conn:
        [from_replay] = await replay_reads.read_batch(
            conn, after=START, types=["TestRoomBooked"], limit=10
        )
    assert from_stream.event == from_feed.event == from_replay.event == expected
    assert from_stream.schema_version == 1  # as stored; the model is the current one
    assert type(from_replay.event).schema_version == 2


async def test_replay_in_the_server_leaves_old_versions_to_the_upcasters(db: asyncpg.Pool) -> None:
    # insert_data_batch's INSERT sees only current versions; the v1 row is named, read with
    # read_data_at and upcast, as replay_batch then applies it.
    for version, data in (
        (1, {"room": "blue", "name": "Hansi Sputer"}),
        (2, {"room": "red", "first_name": "Ada", "last_name": "Lovelace"}),
    ):
        await db.execute(
            "INSERT INTO events (stream_id, version, event_id, type, schema_version, data,"
            " metadata) VALUES ('rooms', $1, $2, 'TestRoomBooked', $1, $3, '{}')",
            version,
            uuid.uuid4(),
            data,
        )
    await horizon_passed(db)
    async with db.acquire() as conn:
        await conn.execute("CREATE TEMP TABLE rooms_seen (room text)")
        filled = await replay_reads.insert_data_batch(
            conn,
            after=START,
            types=["TestRoomBooked"],
            limit=10,
            insert="INSERT INTO rooms_seen SELECT data ->> 'room' FROM logged",
        )
        inserted = await conn.fetch("SELECT room FROM rooms_seen")
        older = await replay_reads.read_data_at(conn, filled.older, ["TestRoomBooked"])
    assert filled.events == 2
    assert [row["room"] for row in inserted] == ["red"]
    assert [logged.data for logged in older] == [
        {"room": "blue", "first_name": "Hansi", "last_name": "Sputer"}
    ]
    assert filled.last is not None and filled.last.position == older[0].position + 1
