"""Numbers every seat change of an event, 1, 2, 3, ... in commit order, and puts the event's seat counts right
after the change on its message.

The number is taken in the same transaction as the change, so a reader that snapshots the seats together
with the event's last change number knows exactly which later messages its snapshot does not contain yet.
Live pages use it to join a snapshot to the stream without a gap, and as the SSE event id to resume from; the
catalog keeps the counts of the newest change it has read.
"""

from __future__ import annotations

from collections import Counter

from boxoffice import messages as topics
from boxoffice.domain.model import SeatStatus
from boxoffice.domain.seat_counts import SeatCounts
from boxoffice.messages import Message
from boxoffice.service_layer.booking_ports import ChangeSequence

AVAILABLE, RESERVED, BOOKED = SeatStatus.AVAILABLE, SeatStatus.RESERVED, SeatStatus.BOOKED
# The status each seat of a seat-change message leaves, and the one it takes.
MOVES = {topics.SEAT_RESERVED: (AVAILABLE, RESERVED), topics.SEAT_RELEASED: (RESERVED, AVAILABLE),
         topics.BOOKING_CONFIRMED: (RESERVED, BOOKED)}
SEAT_CHANGES = frozenset(MOVES)


def counts_moved(message: Message) -> SeatCounts:
    """How a seat-change message moves its event's counts (a refund releases seats that were BOOKED)."""
    from_status, to_status = MOVES[message.type]
    if message.type == topics.SEAT_RELEASED and message.data.get("reason") == "refunded":
        from_status = BOOKED
    return SeatCounts.moved(len(message.data.get("seatIds") or []), from_status, to_status)


async def number_seat_changes(sequence: ChangeSequence, outgoing: list[Message]) -> None:
    """Adds `seq` and the counts after the change (`available`, `reserved`, `booked`) to the data of each
    seat-change message, in list order per event."""
    changes = [(m, counts_moved(m)) for m in outgoing if m.type in SEAT_CHANGES]
    if not changes:
        return
    per_event = Counter(m.event_id for m, _ in changes)
    moved: dict[str, SeatCounts] = {}
    for message, change in changes:
        moved[message.event_id] = moved.get(message.event_id, SeatCounts()) + change
    last = await sequence.advance({e: (n, moved[e]) for e, n in per_event.items()})
    next_seq = {e: last[e].seq - n + 1 for e, n in per_event.items()}
    counts = {e: last[e].counts - moved[e] for e in per_event}
    for message, change in changes:
        counts[message.event_id] += change
        after = counts[message.event_id]
        message.data.update(seq=next_seq[message.event_id], available=after.available, reserved=after.reserved,
                            booked=after.booked)
        next_seq[message.event_id] += 1
