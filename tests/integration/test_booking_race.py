"""Two transactions race for one seat against a real PostgreSQL; the control run proves the test can fail."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from boxoffice import messages as topics
from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.postgres import create_pool
from boxoffice.domain.catalog import EventSpec
from boxoffice.domain.commands import ReserveSeats
from boxoffice.messages import Message, decode
from tests.booking_service import decide, reservation, reserve
from tests.conftest import new_database, small_event
from tests.servers import Servers

HOLD = timedelta(minutes=10)


def now() -> datetime:
    return datetime.now(UTC)


def request(event: EventSpec, user: str, *seats: str) -> ReserveSeats:
    return ReserveSeats(f"req-{user}-{'-'.join(seats)}-{event.event_id}", event.event_id, user, list(seats))


async def live_holders(pool: asyncpg.Pool, event_id: str, seat_id: str) -> list[str]:
    rows = await pool.fetch(
        """SELECT b.user_id FROM booking_seats bs JOIN bookings b USING (booking_id)
           WHERE bs.event_id = $1 AND bs.seat_id = $2 AND bs.live""", event_id, seat_id)
    return sorted(r["user_id"] for r in rows)


async def race(pool: asyncpg.Pool, event: EventSpec, barrier: asyncio.Barrier | None = None,
               seat_check: bool = True) -> list[BaseException | list]:
    async def one(user: str, pause: float) -> list:
        async def loaded() -> None:
            if barrier is not None:
                await barrier.wait()
            await asyncio.sleep(pause)  # hold the row locks a while, so the other really waits

        rows = await reserve(pool, [request(event, user, "A1")], HOLD, now(), after_lock=loaded,
                             seat_check=seat_check)
        return [decode(r.payload).type for r in rows]

    return await asyncio.gather(one("user_1", 0.2), one("user_2", 0.0), return_exceptions=True)


async def test_two_transactions_on_one_seat_one_wins(pool: asyncpg.Pool, event: EventSpec) -> None:
    results = await race(pool, event)

    assert sorted(r[0] for r in results) == ["seat.reservation.failed", "seat.reserved"]
    holders = await live_holders(pool, event.event_id, "A1")
    assert len(holders) == 1
    seat = await pool.fetchrow("SELECT status, booking_id FROM seats WHERE event_id = $1 AND seat_id = 'A1'",
                               event.event_id)
    winner = await pool.fetchval("SELECT booking_id FROM bookings WHERE event_id = $1", event.event_id)
    assert seat["status"] == "RESERVED" and seat["booking_id"] == winner


async def test_control_without_seat_check_or_constraint_double_holds(servers: Servers) -> None:
    """The same race with every guard off must sell the seat twice, or the test above proves nothing."""
    dsn = await new_database(servers, "control_double_hold")
    pool = await create_pool(dsn, size=4)
    try:
        await pool.execute("DROP INDEX one_live_booking_per_seat")
        spec = small_event()
        async with pool.acquire() as con:
            await create_event(con, spec)
        results = await race(pool, spec, asyncio.Barrier(2), seat_check=False)

        assert [r[0] for r in results] == ["seat.reserved", "seat.reserved"]
        assert await live_holders(pool, spec.event_id, "A1") == ["user_1", "user_2"]
    finally:
        await pool.close()


async def test_database_refuses_a_double_hold_when_the_code_does_not_check(pool: asyncpg.Pool,
                                                                             event: EventSpec) -> None:
    results = await race(pool, event, asyncio.Barrier(2), seat_check=False)

    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], asyncpg.UniqueViolationError)
    assert len(await live_holders(pool, event.event_id, "A1")) == 1


async def test_multi_seat_request_is_all_or_nothing(pool: asyncpg.Pool, event: EventSpec) -> None:
    await reserve(pool, [request(event, "first", "A2")], HOLD, now())
    rows = await reserve(pool, [request(event, "second", "A1", "A2", "A3")], HOLD, now())

    failed = decode(rows[0].payload)
    assert failed.type == "seat.reservation.failed" and failed.data["seatIds"] == ["A2"]
    statuses = dict(await pool.fetch(
        "SELECT seat_id, status FROM seats WHERE event_id = $1 AND seat_id = ANY($2)",
        event.event_id, ["A1", "A2", "A3"]))
    assert statuses == {"A1": "AVAILABLE", "A2": "RESERVED", "A3": "AVAILABLE"}


async def test_requests_in_one_batch_are_decided_in_order(pool: asyncpg.Pool, event: EventSpec) -> None:
    batch = [request(event, f"user_{i}", "B1", f"B{i + 2}") for i in range(3)]
    rows = await reserve(pool, batch, HOLD, now())

    outcomes = [decode(r.payload) for r in rows]
    assert [(m.type, m.data["userId"]) for m in outcomes] == [
        ("seat.reserved", "user_0"), ("seat.reservation.failed", "user_1"), ("seat.reservation.failed", "user_2")]
    assert await live_holders(pool, event.event_id, "B1") == ["user_0"]
    assert await pool.fetchval("SELECT amount FROM bookings WHERE event_id = $1", event.event_id) == 40


async def test_redelivered_request_changes_nothing_twice(pool: asyncpg.Pool, event: EventSpec) -> None:
    command = request(event, "user_1", "A4", "A5")
    first = await reserve(pool, [command], HOLD, now())
    again = await reserve(pool, [command], HOLD, now())
    in_one_batch = await reserve(pool, [command, command], HOLD, now())

    assert again[0].payload == first[0].payload and again[0].topic == first[0].topic
    assert len(in_one_batch) == 1 and in_one_batch[0].payload == first[0].payload
    assert await pool.fetchval("SELECT count(*) FROM bookings WHERE event_id = $1", event.event_id) == 1
    assert await pool.fetchval(
        "SELECT count(*) FROM booking_seats WHERE event_id = $1 AND live", event.event_id) == 2
    assert await pool.fetchval(
        "SELECT outcome_topic FROM booking_requests WHERE request_id = $1", command.request_id) == "seat.reserved"


async def test_unknown_event_and_seat_are_refused_without_changes(pool: asyncpg.Pool, event: EventSpec) -> None:
    rows = await reserve(pool, [
        ReserveSeats("req-unknown-event", "no_such_event", "u", ["A1"]),
        ReserveSeats("req-unknown-seat", event.event_id, "u", ["A1", "Z9"]),
    ], HOLD, now())

    codes = [decode(r.payload).data["code"] for r in rows]
    assert codes == ["event_not_found", "seat_not_found"]
    assert await pool.fetchval(
        "SELECT count(*) FROM seats WHERE event_id = $1 AND status <> 'AVAILABLE'", event.event_id) == 0


@pytest.mark.parametrize("status, booking", [("AVAILABLE", True), ("RESERVED", False)])
async def test_seat_status_and_owner_must_agree(pool: asyncpg.Pool, event: EventSpec, status: str,
                                                booking: bool) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "UPDATE seats SET status = $3, booking_id = CASE WHEN $4 THEN gen_random_uuid() END "
            "WHERE event_id = $1 AND seat_id = $2", event.event_id, "A9", status, booking)


async def test_a_batch_mixing_picked_seats_and_best_available_is_decided_in_order_on_postgresql(
        pool: asyncpg.Pool, event: EventSpec) -> None:
    def best(user: str, quantity: int, category: str | None = None) -> Message:
        data: dict[str, object] = {"userId": user, "quantity": quantity}
        if category:
            data["categoryId"] = category
        return Message(topics.SEAT_RESERVATION_REQUESTED, event.event_id, data, f"req_{user}")

    # Row A is "std" (A1-A10), row B "cheap" (B1-B10).
    batch = [reservation(request(event, "picker", "A1", "A2")), best("ann", 3), best("bob", 2, "cheap"),
             reservation(request(event, "late", "A3")), best("cy", 8, "std")]
    rows = await decide(pool, batch, now())
    outcomes = {m.data["userId"]: m for m in (decode(r.payload) for r in rows)}
    assert outcomes["ann"].data["seatIds"] == ["A3", "A4", "A5"]
    assert outcomes["bob"].data["seatIds"] == ["B1", "B2"]
    assert outcomes["late"].data["code"] == "seat_unavailable"
    assert outcomes["cy"].data["code"] == "sold_out"  # A6-A10 left: five, not eight
    for user, seats in (("picker", ["A1", "A2"]), ("ann", ["A3", "A4", "A5"]), ("bob", ["B1", "B2"])):
        for seat in seats:
            assert await live_holders(pool, event.event_id, seat) == [user]
    # A second service (a fresh seating) sees what the first held, from the database.
    [again] = [decode(r.payload) for r in await decide(pool, [best("dee", 5, "std")], now())]
    assert again.data["seatIds"] == ["A6", "A7", "A8", "A9", "A10"]
