"""The catalog's records in PostgreSQL: events with their seat maps, and live availability counts."""

from __future__ import annotations

import asyncpg

from boxoffice.adapters.postgres import Connection
from boxoffice.adapters.postgres_uow import PostgresTransaction
from boxoffice.adapters.waiting_room_store import rate_column
from boxoffice.domain.catalog import EventSpec
from boxoffice.service_layer.catalog_ports import AvailabilityCounts, CountsAt, EventRepository


async def create_event(con: Connection, spec: EventSpec, request_id: str | None = None) -> bool:
    """Idempotent: an event that exists already is left as it is. Returns whether it was created."""
    seats = spec.seats()
    async with con.transaction():
        created = await con.fetchval(
            """INSERT INTO events (event_id, name, venue_name, venue_city, starts_at, currency, seats_available,
                                   creation_request, organiser_id, hold_seconds)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (event_id) DO NOTHING RETURNING true""",
            spec.event_id, spec.name, spec.venue_name, spec.venue_city, spec.starts_at, spec.currency, len(seats),
            request_id, spec.organiser_id, spec.hold_seconds)
        if not created:
            return False
        await con.executemany(
            "INSERT INTO price_categories (event_id, category_id, name, price) VALUES ($1, $2, $3, $4)",
            [(spec.event_id, c.category_id, c.name, c.price) for c in spec.categories])
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
                spec.event_id, spec.on_sale.waiting_room, spec.on_sale.opens_at,
                rate_column(spec.on_sale.admit_per_minute), spec.on_sale.admission_minutes)
        return True


class PostgresEvents:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def create(self, spec: EventSpec, request_id: str | None = None) -> bool:
        return await create_event(self._con, spec, request_id)


class PostgresAvailability:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def keep_newest(self, latest: dict[str, CountsAt]) -> None:
        if not latest:
            return
        event_ids = sorted(latest)  # rows locked in one order by every writer
        await self._con.execute(
            """UPDATE event_availability a
               SET available = d.available, reserved = d.reserved, booked = d.booked, change_seq = d.seq,
                   updated_at = now()
               FROM unnest($1::text[], $2::bigint[], $3::int[], $4::int[], $5::int[])
                    AS d(event_id, seq, available, reserved, booked)
               WHERE a.event_id = d.event_id AND a.change_seq < d.seq""",
            event_ids, [latest[e].seq for e in event_ids], [latest[e].counts.available for e in event_ids],
            [latest[e].counts.reserved for e in event_ids], [latest[e].counts.booked for e in event_ids])


class PostgresCatalogUnitOfWork(PostgresTransaction):
    events: EventRepository
    availability: AvailabilityCounts

    def _bind(self, con: asyncpg.Connection) -> None:
        super()._bind(con)
        self.events = PostgresEvents(con)
        self.availability = PostgresAvailability(con)
