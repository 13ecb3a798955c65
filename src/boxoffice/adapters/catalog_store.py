"""Creates events with their seat maps and availability row."""

from __future__ import annotations

import asyncpg

from boxoffice.domain.catalog import EventSpec


async def create_event(con: asyncpg.Connection, spec: EventSpec) -> bool:
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
                              "position"],
            records=[(spec.event_id, s.seat_id, s.section, s.row, s.number, s.category_id, s.price, s.position)
                     for s in seats])
        await con.execute(
            "INSERT INTO event_availability (event_id, total, available, reserved, booked) VALUES ($1, $2, $2, 0, 0)",
            spec.event_id, len(seats))
        return True
