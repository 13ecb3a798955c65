"""The live hub against a real PostgreSQL snapshot: no gap between snapshot and stream, slow clients dropped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from boxoffice.adapters.live_store import load_seat_map
from boxoffice.domain.catalog import EventSpec
from boxoffice.domain.commands import ReserveSeats
from boxoffice.messages import decode
from boxoffice.service_layer.live_hub import LiveHub
from tests.booking_service import reserve


def frames(subscriber_queue: asyncio.Queue, first: list[bytes]) -> list[dict]:
    import orjson

    out = list(first)
    while not subscriber_queue.empty():
        item = subscriber_queue.get_nowait()
        if item is not None:
            out.append(item)
    # A write may carry several SSE messages (changes that arrived together).
    messages = [m for f in out for m in f.split(b"\n\n") if b"data: " in m]
    return [orjson.loads(m.split(b"data: ", 1)[1]) for m in messages]


async def test_snapshot_then_stream_misses_nothing_while_changes_commit(pool: asyncpg.Pool, event: EventSpec) -> None:
    hub = LiveHub(lambda event_id: load_seat_map(pool, event_id))
    published = []

    async def book(i: int, seat: str) -> None:
        rows = await reserve(pool, [ReserveSeats(f"req-live-{event.event_id}-{i}", event.event_id, f"u{i}",
                                                 [seat])], timedelta(minutes=5), datetime.now(UTC))
        published.extend(decode(r.payload) for r in rows)

    seats = [s.seat_id for s in event.seats()]
    await asyncio.gather(*(book(i, seat) for i, seat in enumerate(seats[:5])))
    # The map loads while more changes commit; messages reach the hub late and out of order.
    loading = asyncio.ensure_future(hub.seat_map(event.event_id))
    await asyncio.gather(*(book(i, seat) for i, seat in enumerate(seats[5:12], start=5)))
    seat_map = await loading
    assert seat_map is not None
    subscriber, first = hub.subscribe(seat_map, None)
    for message in reversed(published):
        hub.on_messages([message])
    await book(99, seats[12])
    hub.on_messages([published[-1]])

    received = frames(subscriber.queue, first)
    snapshot, changes = received[0], received[1:]
    assert snapshot["type"] == "snapshot"
    assert [c["seq"] for c in changes] == list(range(snapshot["seq"] + 1, 14))
    shown = {s["seatId"]: s["status"] for s in snapshot["seats"]}
    for c in changes:
        shown.update({s: "RESERVED" for s in c["seatIds"]})
    truth = dict(await pool.fetch("SELECT seat_id, status FROM seats WHERE event_id = $1", event.event_id))
    assert shown == truth and changes[-1]["reserved"] == 13


async def test_a_stalled_client_is_dropped_and_the_others_get_every_change(pool: asyncpg.Pool,
                                                                         event: EventSpec) -> None:
    hub = LiveHub(lambda event_id: load_seat_map(pool, event_id), queue_size=5)
    seat_map = await hub.seat_map(event.event_id)
    assert seat_map is not None
    stalled, _ = hub.subscribe(seat_map, None)
    reader, _ = hub.subscribe(seat_map, None)
    received: list[bytes] = []

    for i, seat in enumerate(s.seat_id for s in event.seats()):
        rows = await reserve(pool, [ReserveSeats(f"req-stall-{event.event_id}-{i}", event.event_id, "u", [seat])],
                                   timedelta(minutes=5), datetime.now(UTC))
        for row in rows:
            hub.on_messages([decode(row.payload)])
        while not reader.queue.empty():  # this client keeps up
            received.append(reader.queue.get_nowait())

    assert len(received) == 20 and hub.dropped == 1
    assert stalled.queue.get_nowait() is None  # told to go away; it reconnects and resumes
    assert stalled not in hub.subscribers[event.event_id] and reader in hub.subscribers[event.event_id]
