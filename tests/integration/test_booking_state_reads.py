"""The gateway's read of a booking before a payment or a cancel: many asked at once share one statement, and each
caller gets what the one-booking read gives it."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial

import asyncpg

from boxoffice import views
from boxoffice.adapters.booking_uow import PostgresBookingUnitOfWork
from boxoffice.adapters.catalog_store import create_event
from boxoffice.grouping import Grouped
from tests.conftest import small_event
from tests.integration.test_booking_repositories import a_hold, committed_hold


async def test_reads_asked_together_give_each_caller_its_own_booking(pool: asyncpg.Pool) -> None:
    spec = small_event(rows=2)
    async with pool.acquire() as con:
        await create_event(con, spec)
    seats = [s.seat_id for s in spec.seats()][:6]
    holds = [a_hold(spec.event_id, seat, user=f"fan_{n}") for n, seat in enumerate(seats)]
    for hold in holds:
        await committed_hold(lambda: PostgresBookingUnitOfWork(pool), hold)
    statements: list[int] = []

    async def counted(booking_ids: list[str]) -> list[asyncpg.Record | None]:
        statements.append(len(booking_ids))
        return await views.booking_states(pool, booking_ids)

    read = Grouped(counted, most=500)
    unknown = str(uuid.uuid4())
    asked = [h.booking_id for h in holds] + [unknown, holds[0].booking_id.upper()]
    got = await asyncio.gather(*(read(b) for b in asked))

    alone = [await views.booking_state(pool, b) for b in asked]
    assert [dict(r) if r else None for r in got] == [dict(r) if r else None for r in alone]
    assert [r["userId"] if r else None for r in got] == [f"fan_{n}" for n in range(6)] + [None, "fan_0"]
    assert sum(statements) == len(asked) and len(statements) < len(asked), statements


async def test_a_read_that_fails_fails_only_its_own_caller(pool: asyncpg.Pool) -> None:
    read = Grouped(partial(views.booking_states, pool))
    spec = small_event(rows=1)
    async with pool.acquire() as con:
        await create_event(con, spec)
    hold = a_hold(spec.event_id, spec.seats()[0].seat_id)
    await committed_hold(lambda: PostgresBookingUnitOfWork(pool), hold)

    good, bad = await asyncio.gather(read(hold.booking_id), read("not-a-uuid"), return_exceptions=True)

    assert not isinstance(good, BaseException) and good is not None and good["status"] == "pending"
    assert isinstance(bad, (ValueError, asyncpg.DataError)), bad


async def test_a_waiting_list_join_reads_whether_the_event_is_called_off(pool: asyncpg.Pool) -> None:
    spec = small_event(rows=1)
    async with pool.acquire() as con:
        await create_event(con, spec)
    assert await views.event_called_off(pool, spec.event_id) is False
    assert await views.event_called_off(pool, "no_such_event") is False
    async with PostgresBookingUnitOfWork(pool) as uow:
        assert await uow.events.call_off(spec.event_id) is True
        await uow.commit()
    assert await views.event_called_off(pool, spec.event_id) is True
