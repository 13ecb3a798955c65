"""GET /events/{id}/seats is written by PostgreSQL (views.seat_map_json): the same seats, in the same order and
with the same fields and statuses as the seat rows read one by one, and an empty list for an event without
seats or none at all."""

from __future__ import annotations

import asyncpg
import orjson

from boxoffice import views
from boxoffice.adapters.booking_uow import PostgresBookingUnitOfWork
from boxoffice.adapters.catalog_store import create_event
from tests.conftest import small_event
from tests.integration.test_booking_repositories import a_hold, committed_hold


async def test_the_seat_map_written_by_postgresql_is_the_seat_rows_read_one_by_one(pool: asyncpg.Pool) -> None:
    spec = small_event(rows=3)
    async with pool.acquire() as con:
        await create_event(con, spec)
    held = spec.seats()[4].seat_id
    await committed_hold(lambda: PostgresBookingUnitOfWork(pool), a_hold(spec.event_id, held))

    written = orjson.loads(await views.seat_map_json(pool, spec.event_id))

    rows = await pool.fetch("""SELECT seat_id, row_label, seat_number, section, category_id, price, status
                               FROM seats WHERE event_id = $1 ORDER BY position""", spec.event_id)
    assert written == [{"seatId": r["seat_id"], "row": r["row_label"], "number": r["seat_number"],
                        "section": r["section"], "category": r["category_id"], "price": float(r["price"]),
                        "status": r["status"]} for r in rows]
    assert await views.seat_map(pool, spec.event_id) == written
    assert [s["seatId"] for s in written] == [s.seat_id for s in spec.seats()]
    assert [s["seatId"] for s in written if s["status"] == "RESERVED"] == [held]
    assert set(written[0]) == {"seatId", "row", "number", "section", "category", "price", "status"}


async def test_an_unknown_event_has_an_empty_seat_map(pool: asyncpg.Pool) -> None:
    assert await views.seat_map_json(pool, "no_such_event") == b"[]"
