"""Doors scanning one ticket at the same moment against a real PostgreSQL: exactly one lets the holder in.
The control run, without the entries' key, must let every door in, or the test proves nothing."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.door_store import PostgresDoorUnitOfWork
from boxoffice.adapters.postgres import create_pool
from boxoffice.domain.tickets import Ticket, TicketSeal
from boxoffice.messages import utc_now
from boxoffice.service_layer.door import verify_ticket
from tests.conftest import new_database, small_event
from tests.servers import Servers

SEAL = TicketSeal(b"door-key-" * 4)
DOORS = 8


async def confirmed_booking(pool: asyncpg.Pool, status: str = "confirmed") -> Ticket:
    """A booking as the booking service leaves it once paid (the door only reads it)."""
    spec = small_event()
    async with pool.acquire() as con:
        assert await create_event(con, spec)
    booking_id = str(uuid.uuid4())
    await pool.execute(
        """INSERT INTO bookings (booking_id, request_id, event_id, user_id, status, seat_ids, amount, currency,
                                 expires_at)
           VALUES ($1::uuid, $2, $3, 'fan', $4, ARRAY['A1', 'A2'], 300, 'USD', now())""",
        booking_id, f"req-{booking_id}", spec.event_id, status)
    return Ticket(spec.event_id, booking_id, "A1")


async def doors(pool: asyncpg.Pool, ticket: Ticket) -> list[str]:
    payload = SEAL.issue(ticket)
    verdicts = await asyncio.gather(*(verify_ticket(payload, SEAL, PostgresDoorUnitOfWork(pool), utc_now)
                                      for _ in range(DOORS)))
    return sorted(v.status for v in verdicts)


async def test_one_door_lets_the_ticket_in_the_others_see_it_used(pool: asyncpg.Pool) -> None:
    ticket = await confirmed_booking(pool)
    assert await doors(pool, ticket) == ["already_used"] * (DOORS - 1) + ["valid"]
    assert await pool.fetchval("SELECT count(*) FROM ticket_entries WHERE booking_id = $1::uuid",
                               ticket.booking_id) == 1


async def test_a_refunded_booking_records_no_entry(pool: asyncpg.Pool) -> None:
    ticket = await confirmed_booking(pool, status="refunded")
    assert await doors(pool, ticket) == ["invalid"] * DOORS
    assert await pool.fetchval("SELECT count(*) FROM ticket_entries WHERE booking_id = $1::uuid",
                               ticket.booking_id) == 0


async def test_control_without_the_entries_key_every_door_lets_it_in(servers: Servers) -> None:
    dsn = await new_database(servers, "control_ticket_entries")
    pool = await create_pool(dsn, size=DOORS)
    try:
        await pool.execute("ALTER TABLE ticket_entries DROP CONSTRAINT ticket_entries_pkey")
        ticket = await confirmed_booking(pool)
        assert await doors(pool, ticket) == ["valid"] * DOORS
    finally:
        await pool.close()
