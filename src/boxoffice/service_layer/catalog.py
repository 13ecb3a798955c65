"""Catalog handlers: organisers' new events, and live availability counts kept from the seat events."""

from __future__ import annotations

import logging
from collections import defaultdict

import asyncpg

from boxoffice import messages as topics
from boxoffice.adapters.catalog_store import create_event
from boxoffice.messages import Message
from boxoffice.service_layer.event_creation import event_from_data

log = logging.getLogger(__name__)

CONSUMER = "catalog.availability"

# (available, reserved, booked) change per seat.
_DELTAS = {
    topics.SEAT_RESERVED: (-1, 1, 0),
    topics.SEAT_RELEASED: (1, -1, 0),
    topics.BOOKING_CONFIRMED: (0, -1, 1),
}


class CatalogHandler:
    """New events are created; seat events move the availability counts."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._counts = AvailabilityCounter(pool)

    async def __call__(self, batch: list[Message]) -> None:
        for message in batch:
            if message.type == topics.EVENT_CREATION_REQUESTED:
                await self._create(message)
        await self._counts(batch)

    async def _create(self, message: Message) -> None:
        try:
            spec = event_from_data(message.data)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            log.error("dropping malformed event creation %s", message.id)
            return
        async with self._pool.acquire() as con:
            if await create_event(con, spec):
                log.info("created event %s with %d seats", spec.event_id, len(spec.seats()))


class AvailabilityCounter:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def __call__(self, batch: list[Message]) -> None:
        relevant = [m for m in batch if m.type in _DELTAS]
        if not relevant:
            return
        async with self._pool.acquire() as con, con.transaction():
            fresh = {r["message_id"] for r in await con.fetch(
                """INSERT INTO processed_messages (consumer, message_id)
                   SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING message_id::text""",
                CONSUMER, [m.id for m in relevant])}
            totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
            for message in relevant:
                if message.id not in fresh:
                    continue
                seats = len(message.data.get("seatIds") or [])
                for i, delta in enumerate(_DELTAS[message.type]):
                    totals[message.event_id][i] += delta * seats
            if not totals:
                return
            event_ids = sorted(totals)
            await con.execute(
                """UPDATE event_availability a
                   SET available = a.available + d.available, reserved = a.reserved + d.reserved,
                       booked = a.booked + d.booked, updated_at = now()
                   FROM unnest($1::text[], $2::int[], $3::int[], $4::int[]) AS d(event_id, available, reserved, booked)
                   WHERE a.event_id = d.event_id""",
                event_ids, *([totals[e][i] for e in event_ids] for i in range(3)))
