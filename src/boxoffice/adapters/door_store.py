"""The door's unit of work in PostgreSQL: bookings read under a share lock, entries kept in `ticket_entries`."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from boxoffice.adapters.postgres_uow import PostgresTransaction
from boxoffice.domain.tickets import BookingAtDoor, Ticket
from boxoffice.service_layer.door_ports import DoorBookings, Entries


class PostgresDoorBookings:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def get(self, booking_id: str) -> BookingAtDoor | None:
        row = await self._con.fetchrow(
            "SELECT b.event_id, b.status, b.seat_ids, e.status = 'cancelled' AS event_cancelled "
            "FROM bookings b JOIN events e USING (event_id) WHERE b.booking_id = $1::uuid FOR SHARE OF b", booking_id)
        return None if row is None else BookingAtDoor(row["event_id"], row["status"], frozenset(row["seat_ids"]),
                                                      row["event_cancelled"])


class PostgresEntries:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def enter(self, ticket: Ticket, at: datetime) -> datetime | None:
        # A racing check waits on the key until the first commits, then inserts nothing and reads its row.
        if await self._con.fetchval(
                """INSERT INTO ticket_entries (booking_id, seat_id, event_id, used_at) VALUES ($1::uuid, $2, $3, $4)
                   ON CONFLICT DO NOTHING RETURNING true""",
                ticket.booking_id, ticket.seat_id, ticket.event_id, at):
            return None
        earlier: datetime = await self._con.fetchval(
            "SELECT used_at FROM ticket_entries WHERE booking_id = $1::uuid AND seat_id = $2",
            ticket.booking_id, ticket.seat_id)
        return earlier


class PostgresDoorUnitOfWork(PostgresTransaction):
    bookings: DoorBookings
    entries: Entries

    def _bind(self, con: asyncpg.Connection) -> None:
        super()._bind(con)
        self.bookings = PostgresDoorBookings(con)
        self.entries = PostgresEntries(con)
