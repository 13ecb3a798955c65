"""The catalog's records in PostgreSQL: events with their seat maps, and live availability counts."""

from __future__ import annotations

import asyncpg

from boxoffice.adapters.postgres import Connection
from boxoffice.adapters.postgres_uow import PostgresTransaction
from boxoffice.domain.catalog import EventSpec
from boxoffice.service_layer.catalog_ports import (
    AvailabilityCounts,
    EventRepository,
    ProcessedMessages,
    SeatCounts,
)


async def create_event(con: Connection, spec: EventSpec) -> bool:
    """Idempotent: an event that exists already is left as it is. Returns whether it was created."""
    async with con.transaction():
        created = await con.fetchval(
            """INSERT INTO events (event_id, name, venue_name, venue_city, starts_at, currency)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING RETURNING true""",
            spec.event_id, spec.name, spec.venue_name, spec.venue_city, spec.starts_at, spec.currency)
        if not created:
            return False
        await con.executemany(
            "INSERT INTO price_categories (event_id, category_id, name, price) VALUES ($1, $2, $3, $4)",
            [(spec.event_id, c.category_id, c.name, c.price) for c in spec.categories])
        seats = spec.seats()
        await con.copy_records_to_table(
            "seats", columns=["event_id", "seat_id", "section", "row_label", "seat_number", "category_id", "price",
                              "position", "best_rank"],
            records=[(spec.event_id, s.seat_id, s.section, s.row, s.number, s.category_id, s.price, s.position,
                      s.rank) for s in seats])
        await con.execute(
            "INSERT INTO event_availability (event_id, total, available, reserved, booked) VALUES ($1, $2, $2, 0, 0)",
            spec.event_id, len(seats))
        if spec.on_sale is not None:
            # The event and its on-sale settings exist together: no join finds one without the other.
            await con.execute(
                """INSERT INTO waiting_rooms (event_id, enabled, opens_at, admit_per_minute, admission_minutes)
                   VALUES ($1, $2, $3, $4, $5)""",
                spec.event_id, spec.on_sale.waiting_room, spec.on_sale.opens_at, spec.on_sale.admit_per_minute,
                spec.on_sale.admission_minutes)
        return True


class PostgresEvents:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def create(self, spec: EventSpec) -> bool:
        return await create_event(self._con, spec)


class PostgresProcessedMessages:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def first_seen(self, consumer: str, message_ids: list[str]) -> set[str]:
        if not message_ids:
            return set()
        return {r["message_id"] for r in await self._con.fetch(
            """INSERT INTO processed_messages (consumer, message_id)
               SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING message_id::text""",
            consumer, message_ids)}


class PostgresAvailability:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def add(self, changes: dict[str, SeatCounts]) -> None:
        if not changes:
            return
        event_ids = sorted(changes)  # rows locked in one order by every writer
        await self._con.execute(
            """UPDATE event_availability a
               SET available = a.available + d.available, reserved = a.reserved + d.reserved,
                   booked = a.booked + d.booked, updated_at = now()
               FROM unnest($1::text[], $2::int[], $3::int[], $4::int[]) AS d(event_id, available, reserved, booked)
               WHERE a.event_id = d.event_id""",
            event_ids, [changes[e].available for e in event_ids], [changes[e].reserved for e in event_ids],
            [changes[e].booked for e in event_ids])


class PostgresCatalogUnitOfWork(PostgresTransaction):
    events: EventRepository
    processed: ProcessedMessages
    availability: AvailabilityCounts

    def _bind(self, con: asyncpg.Connection) -> None:
        super()._bind(con)
        self.events = PostgresEvents(con)
        self.processed = PostgresProcessedMessages(con)
        self.availability = PostgresAvailability(con)
