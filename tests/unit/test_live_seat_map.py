"""The live seat map: applies changes in sequence order, once, and knows what a reconnecting browser missed."""

from __future__ import annotations

import pytest

from boxoffice import messages as topics
from boxoffice.messages import Message
from boxoffice.service_layer.live import LiveSeatMap, change_number


def seats(*ids: str) -> list[dict]:
    return [{"seatId": s, "row": s[0], "number": int(s[1:]), "section": "Main", "category": "c", "price": 10.0,
             "status": "AVAILABLE"} for s in ids]


def change(topic: str, seq: int, *seat_ids: str, reason: str | None = None) -> Message:
    data: dict = {"seq": seq, "seatIds": list(seat_ids), "bookingId": f"b{seq}"}
    if reason:
        data["reason"] = reason
    return Message(topic, "ev", data)


def status(seat_map: LiveSeatMap) -> dict[str, str]:
    return {s["seatId"]: s["status"] for s in seat_map.seats}


def test_changes_apply_in_order_with_counts() -> None:
    seat_map = LiveSeatMap("ev", 0, seats("A1", "A2", "A3"))
    first = seat_map.offer(change(topics.SEAT_RESERVED, 1, "A1", "A2"))
    second = seat_map.offer(change(topics.BOOKING_CONFIRMED, 2, "A1", "A2"))
    third = seat_map.offer(change(topics.SEAT_RESERVED, 3, "A3"))
    fourth = seat_map.offer(change(topics.SEAT_RELEASED, 4, "A3", reason="timeout"))

    assert [c["type"] for c in first + second + third + fourth] == [
        "seat.reserved", "seat.booked", "seat.reserved", "seat.released"]
    assert fourth[0]["reason"] == "timeout"
    # The stream is anonymous: the field is there, the booking ids of the messages are not.
    assert [c["bookingId"] for c in first + second + third + fourth] == [None] * 4
    assert (first[0]["available"], first[0]["reserved"], first[0]["booked"]) == (1, 2, 0)
    assert (fourth[0]["available"], fourth[0]["reserved"], fourth[0]["booked"]) == (1, 0, 2)
    assert status(seat_map) == {"A1": "BOOKED", "A2": "BOOKED", "A3": "AVAILABLE"}


def test_out_of_order_changes_wait_for_their_predecessor() -> None:
    seat_map = LiveSeatMap("ev", 0, seats("A1", "A2"))
    assert seat_map.offer(change(topics.BOOKING_CONFIRMED, 2, "A1")) == []
    assert seat_map.gap_since is not None and status(seat_map)["A1"] == "AVAILABLE"

    applied = seat_map.offer(change(topics.SEAT_RESERVED, 1, "A1"))
    assert [c["seq"] for c in applied] == [1, 2]
    assert seat_map.gap_since is None and status(seat_map)["A1"] == "BOOKED"


def test_duplicates_and_changes_older_than_the_snapshot_are_ignored() -> None:
    seat_map = LiveSeatMap("ev", 5, seats("A1"))
    assert seat_map.offer(change(topics.SEAT_RESERVED, 5, "A1")) == []
    assert seat_map.offer(Message(topics.SEAT_RESERVED, "ev", {"seatIds": ["A1"]})) == []
    assert len(seat_map.offer(change(topics.SEAT_RESERVED, 6, "A1"))) == 1
    assert seat_map.offer(change(topics.SEAT_RESERVED, 6, "A1")) == []
    assert seat_map.seq == 6


def test_a_reconnecting_browser_gets_exactly_what_it_missed() -> None:
    seat_map = LiveSeatMap("ev", 0, seats("A1", "A2", "A3"), history=2)
    for seq, seat in enumerate(["A1", "A2", "A3"], start=1):
        seat_map.offer(change(topics.SEAT_RESERVED, seq, seat))

    assert [c["seq"] for c in seat_map.since(1) or []] == [2, 3]
    assert seat_map.since(3) == []
    assert seat_map.since(0) is None  # change 1 is no longer kept: a new snapshot instead
    assert seat_map.since(9) is None  # from the future (an older broker life): a new snapshot
    snapshot = seat_map.snapshot()
    assert snapshot["seq"] == 3 and snapshot["reserved"] == 3 and snapshot["total"] == 3


class RecordingSubscriber:
    def __init__(self, event_id: str) -> None:
        self.event_id, self.writes = event_id, []

    def deliver(self, frame: bytes) -> bool:
        self.writes.append(frame)
        return True

    def close(self) -> None:
        pass


async def test_changes_that_arrive_together_go_out_in_one_write_per_connection() -> None:
    from boxoffice.service_layer.live_hub import LiveHub

    async def load(event_id: str):
        return 0, seats("A1", "A2", "A3") if event_id == "ev" else None

    hub = LiveHub(load)
    seat_map = await hub.seat_map("ev")
    watchers = [hub.subscribe(seat_map, None, RecordingSubscriber("ev"))[0] for _ in range(3)]
    # Out of order within the batch, and one for an event nobody watches.
    hub.on_messages([change(topics.SEAT_RESERVED, 2, "A2"), change(topics.SEAT_RESERVED, 1, "A1"),
                     Message(topics.SEAT_RESERVED, "other", {"seq": 1, "seatIds": ["X1"], "bookingId": "b"}),
                     change(topics.SEAT_RELEASED, 3, "A1", reason="cancelled")])

    for watcher in watchers:
        assert len(watcher.writes) == 1
        ids = [line for line in watcher.writes[0].split(b"\n") if line.startswith(b"id: ")]
        assert ids == [b"id: 1", b"id: 2", b"id: 3"]
    assert hub.delivered == 9


@pytest.mark.parametrize(("given", "number"), [
    ("0", 0), ("42", 42), ("05", 5), ("9" * 19, 10**19 - 1),
    ("", None), ("-1", None), ("abc", None), ("²", None), ("١٢", None), ("+5", None), ("5.0", None),
    ("7" * 20, None), ("7" * 5000, None),  # found from outside: 5,000 digits left a live request unanswered
])
def test_a_resume_point_is_a_change_number_of_at_most_19_ascii_digits(given: str, number: int | None) -> None:
    assert change_number(given) == number
