"""A snapshot carries the event's last changes, also those made before anyone watched the event, so that a
page opening shows what just happened."""

from __future__ import annotations

from typing import Any

import orjson

from boxoffice import messages as topics
from boxoffice.messages import Message
from boxoffice.service_layer.live import RECENT_SEATS_PER_CHANGE, RecentChanges
from boxoffice.service_layer.live_hub import LiveHub
from tests.unit.test_live_seat_map import change, seats


def _payload(frame: bytes) -> dict[str, Any]:
    return orjson.loads(frame.decode().split("data: ", 1)[1])


async def test_the_snapshot_carries_the_changes_made_before_the_first_viewer() -> None:
    async def load(event_id: str) -> tuple[int, list[dict[str, Any]]] | None:
        return 3, seats("A1", "A2")  # the database already holds changes 1-3

    hub = LiveHub(load)
    hub.on_messages([change(topics.SEAT_RESERVED, 1, "A1"), change(topics.SEAT_RELEASED, 3, "A1", reason="timeout"),
                     change(topics.SEAT_RESERVED, 2, "A2"), change(topics.SEAT_RESERVED, 1, "A1"),  # redelivered
                     Message(topics.SEAT_RESERVED, "ev", {"seatIds": ["A1"]})])  # unsequenced: not a change
    seat_map = await hub.seat_map("ev")
    assert seat_map is not None
    _, first = hub.subscribe(seat_map, None)

    snapshot = _payload(first[0])
    assert snapshot["type"] == "snapshot" and snapshot["seq"] == 3
    assert [(c["seq"], c["type"], c["seatIds"]) for c in snapshot["recent"]] == [
        (1, "seat.reserved", ["A1"]), (2, "seat.reserved", ["A2"]), (3, "seat.released", ["A1"])]
    assert snapshot["recent"][2]["reason"] == "timeout" and all(c["bookingId"] is None for c in snapshot["recent"])


def test_only_the_last_changes_are_kept_and_only_those_the_snapshot_shows_are_given() -> None:
    recent = RecentChanges(per_event=3)
    for seq in (5, 1, 4, 2, 3, 6, 7):
        recent.record(change(topics.SEAT_RESERVED, seq, "A1"))
    assert [c["seq"] for c in recent.up_to("ev", 10)] == [5, 6, 7]
    assert [c["seq"] for c in recent.up_to("ev", 6)] == [5, 6]  # 7 comes after such a snapshot, as a change
    assert recent.up_to("other", 10) == []


def test_what_is_kept_is_bounded_whatever_events_and_seats_messages_make_up() -> None:
    # Found from outside: each made-up event id kept 20 changes of 200 made-up seats, for good (65 MB a process
    # for 100 such events).
    recent = RecentChanges(per_event=3, events=2)
    for event_id in ("ghost_1", "ghost_2", "ev"):
        message = change(topics.SEAT_RELEASED, 1, "A1")
        recent.record(Message(message.type, event_id, {**message.data, "seatIds": [f"S{n}" for n in range(200)]}))
    assert recent.up_to("ghost_1", 10) == []  # the least recently changed event is forgotten
    assert [len(c["seatIds"]) for c in recent.up_to("ev", 10)] == [RECENT_SEATS_PER_CHANGE]
    assert len(recent.up_to("ghost_2", 10)) == 1
