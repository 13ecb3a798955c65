"""Numbers every seat change of an event, 1, 2, 3, ... in commit order.

The number is taken in the same transaction as the change, so a reader that snapshots the seats together
with the event's last change number knows exactly which later messages its snapshot does not contain yet.
Live pages use it to join a snapshot to the stream without a gap, and as the SSE event id to resume from.
"""

from __future__ import annotations

from collections import Counter

from boxoffice import messages as topics
from boxoffice.messages import Message
from boxoffice.service_layer.booking_ports import ChangeSequence

SEAT_CHANGES = frozenset({topics.SEAT_RESERVED, topics.SEAT_RELEASED, topics.BOOKING_CONFIRMED})


async def number_seat_changes(sequence: ChangeSequence, outgoing: list[Message]) -> None:
    """Adds `seq` to the data of each seat-change message, in list order per event."""
    changes = [m for m in outgoing if m.type in SEAT_CHANGES]
    if not changes:
        return
    per_event = Counter(m.event_id for m in changes)
    last = await sequence.advance(dict(per_event))
    next_seq = {event_id: last[event_id] - count + 1 for event_id, count in per_event.items()}
    for message in changes:
        message.data["seq"] = next_seq[message.event_id]
        next_seq[message.event_id] += 1
