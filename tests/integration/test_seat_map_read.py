"""GET /events/{id}/seats is written by PostgreSQL (views.seat_map_json): the same seats, in the same order and
with the same fields and statuses as the rows read one by one (views.seat_map), and an empty list for an event
without seats or none at all."""

from __future__ import annotations

import asyncpg
import orjson

from boxoffice import views
from boxoffice.adapters.booking_uow import PostgresBookingUnitOfWork
from boxoffice.adapters.catalog_store import create_event
from tests.conftest import small_event
from tests.integration.test_booking_repositories import a_hold, committed_hold


async def test_the_seat_map_written_by_postgresql_is_the_one_read_row_by_row(pool: asyncpg.Pool) -> None:
    spec = small_event(rows=3)
    async with pool.acquire() as con:
        await create_event(con, spec)
    held = spec.seats()[4].seat_id
    await committed_hold(lambda: PostgresBookingUnitOfWork(pool), a_hold(spec.event_id, held))

    written = orjson.loads(await views.seat_map_json(pool, spec.event_id))

    assert written == await views.seat_map(pool, spec.event_id)
    assert [s["seatId"] for s in written] == [s.seat_id for s in spec.seats()]
    assert [s["seatId"] for s in written if s["status"] == "RESERVED"] == [held]
    assert set(written[0]) == {"seatId", "row", "number", "section", "category", "price", "status"}


async def test_an_unknown_event_has_an_empty_seat_map(pool: asyncpg.Pool) -> None:
    assert await views.seat_map_json(pool, "no_such_event") == b"[]"
