"""The live seat map of one event, as browsers see it: a snapshot, then one change per seat message.

Seat messages carry the event's change sequence number (`seq`). Messages arrive on three topics, so they
can come out of order: a change is applied only when its predecessor has been, and a gap that does not
close is reported so that the map can be reloaded.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from boxoffice import messages as topics
from boxoffice.messages import Message

LIVE_TYPES = {
    topics.SEAT_RESERVED: ("seat.reserved", "RESERVED"),
    topics.SEAT_RELEASED: ("seat.released", "AVAILABLE"),
    topics.BOOKING_CONFIRMED: ("seat.booked", "BOOKED"),
}
_COUNTED = {"AVAILABLE": "available", "RESERVED": "reserved", "BOOKED": "booked"}


def change_number(last_event_id: str) -> int | None:
    """The change a stream resumes after, from a `Last-Event-ID` (or `lastEventId`): ASCII digits of at most a
    PostgreSQL bigint's 19 ("²" is a digit to Python, and it refuses to read an int of over 4,300 digits); None
    for anything else, which gets a fresh snapshot."""
    if last_event_id.isascii() and last_event_id.isdigit() and len(last_event_id) <= 19:
        return int(last_event_id)
    return None


@dataclass
class LiveSeatMap:
    event_id: str
    seq: int
    seats: list[dict[str, Any]]
    history: int = 10_000
    _by_id: dict[str, dict[str, Any]] = field(init=False, repr=False)
    counts: dict[str, int] = field(init=False)
    recent: deque[dict[str, Any]] = field(init=False, repr=False)
    _early: dict[int, Message] = field(init=False, repr=False)
    gap_since: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._by_id = {s["seatId"]: s for s in self.seats}
        self.counts = {"available": 0, "reserved": 0, "booked": 0}
        for seat in self.seats:
            self.counts[_COUNTED[seat["status"]]] += 1
        self.recent = deque(maxlen=self.history)
        self._early = {}

    def snapshot(self) -> dict[str, Any]:
        return {"type": "snapshot", "eventId": self.event_id, "seq": self.seq, "total": len(self.seats),
                **self.counts, "seats": self.seats}

    def offer(self, message: Message) -> list[dict[str, Any]]:
        """Takes a seat message; returns the changes that became applicable, in sequence order."""
        seq = message.data.get("seq")
        if not isinstance(seq, int) or seq <= self.seq:
            return []  # not sequenced, or already in the map (redelivered, or older than the snapshot)
        self._early[seq] = message
        applied = []
        while self.seq + 1 in self._early:
            applied.append(self._apply(self._early.pop(self.seq + 1)))
        self.gap_since = (self.gap_since or time.monotonic()) if self._early else None
        return applied

    def _apply(self, message: Message) -> dict[str, Any]:
        kind, status = LIVE_TYPES[message.type]
        seat_ids = [s for s in message.data.get("seatIds", []) if s in self._by_id]
        for seat_id in seat_ids:
            seat = self._by_id[seat_id]
            self.counts[_COUNTED[seat["status"]]] -= 1
            seat["status"] = status
            self.counts[_COUNTED[status]] += 1
        self.seq = message.data["seq"]
        # Every watcher is anonymous: a booking id read here would let anyone read, cancel or pass off as a
        # ticket someone else's booking. The field stays (CONTRACT §3) and is null; a buyer knows their own.
        change = {"type": kind, "eventId": self.event_id, "seq": self.seq, "seatIds": seat_ids,
                  "bookingId": None, **self.counts, "at": message.occurred_at}
        if kind == "seat.released":
            change["reason"] = message.data.get("reason")
        self.recent.append(change)
        return change

    def since(self, last_seen: int) -> list[dict[str, Any]] | None:
        """The changes after `last_seen`, or None when they are no longer all kept (send a snapshot)."""
        if last_seen > self.seq:
            return None
        if last_seen == self.seq:
            return []
        if not self.recent or self.recent[0]["seq"] > last_seen + 1:
            return None
        return [c for c in self.recent if c["seq"] > last_seen]


RECENT_IN_SNAPSHOT = 20
# What the recent activity keeps at most: anyone who can write to the broker can make up events and seat ids, and
# a page shows a change's first few seats. A booking's seats are far fewer.
RECENT_EVENTS = 1000
RECENT_SEATS_PER_CHANGE = 20


class RecentChanges:
    """The last changes of every event, kept whether or not anyone watches it yet (a map is loaded on its
    first viewer): a snapshot carries them so that a page opening can show what just happened."""

    def __init__(self, per_event: int = RECENT_IN_SNAPSHOT, events: int = RECENT_EVENTS) -> None:
        self._per_event, self._events = per_event, events
        self._by_event: OrderedDict[str, dict[int, dict[str, Any]]] = OrderedDict()  # the last changed last

    def record(self, message: Message) -> None:
        seq = message.data.get("seq")
        if message.type not in LIVE_TYPES or not isinstance(seq, int):
            return
        kept = self._by_event.setdefault(message.event_id, {})
        self._by_event.move_to_end(message.event_id)
        if len(self._by_event) > self._events:
            self._by_event.popitem(last=False)
        if seq in kept or (len(kept) >= self._per_event and seq < min(kept)):
            return  # a redelivery, or older than all kept
        kind, _ = LIVE_TYPES[message.type]
        # No booking ids, as in the stream's changes: every watcher is anonymous.
        seat_ids = message.data.get("seatIds", [])
        change = {"type": kind, "seq": seq, "seatIds": list(seat_ids[:RECENT_SEATS_PER_CHANGE]),
                  "bookingId": None, "at": message.occurred_at}
        if kind == "seat.released":
            change["reason"] = message.data.get("reason")
        kept[seq] = change
        if len(kept) > self._per_event:
            del kept[min(kept)]

    def up_to(self, event_id: str, seq: int) -> list[dict[str, Any]]:
        """The kept changes a snapshot at `seq` already shows, oldest first."""
        kept = self._by_event.get(event_id, {})
        return [kept[s] for s in sorted(kept) if s <= seq]
