"""Numbers every seat change of an event, 1, 2, 3, ... in commit order.

The number is taken in the same transaction as the change, so a reader that snapshots the seats together
with `events.change_seq` knows exactly which later messages its snapshot does not contain yet. Live pages
use it to join a snapshot to the stream without a gap, and as the SSE event id to resume from.
"""

from __future__ import annotations

from collections import Counter

import asyncpg

from boxoffice import messages as topics
from boxoffice.messages import Message

SEAT_CHANGES = (topics.SEAT_RESERVED, topics.SEAT_RELEASED, topics.BOOKING_CONFIRMED)


async def stamp_sequence(con: asyncpg.Connection, outgoing: list[tuple[str, Message]]) -> None:
    """Adds `seq` to the data of each seat-change message, in list order per event."""
    changes = [m for topic, m in outgoing if topic in SEAT_CHANGES]
    if not changes:
        return
    per_event = Counter(m.event_id for m in changes)
    events = sorted(per_event)
    rows = await con.fetch(
        """UPDATE events e SET change_seq = e.change_seq + d.n
           FROM unnest($1::text[], $2::int[]) AS d(event_id, n)
           WHERE e.event_id = d.event_id RETURNING e.event_id, e.change_seq""",
        events, [per_event[e] for e in events])
    next_seq = {r["event_id"]: r["change_seq"] - per_event[r["event_id"]] + 1 for r in rows}
    for message in changes:
        message.data["seq"] = next_seq[message.event_id]
        next_seq[message.event_id] += 1
