"""One contract, two implementations: the booking service's repositories on PostgreSQL and the in-memory fake
that the handlers' unit tests use must behave alike, guards included."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from boxoffice.adapters.booking_uow import PostgresBookings, PostgresBookingUnitOfWork
from boxoffice.adapters.catalog_store import create_event
from boxoffice.domain import events
from boxoffice.domain.model import Booking, BookingStatus, SeatStatus
from boxoffice.domain.seat_counts import CountsAt, SeatCounts
from boxoffice.domain.waitlist import WaitlistEntry, WaitlistStatus
from boxoffice.service_layer.booking_ports import (
    BookingUnitOfWork,
    ConcurrentHoldDetected,
    SeatsOutOfStep,
    StoredOutcome,
)
from boxoffice.service_layer.unit_of_work import Outgoing
from tests.conftest import small_event
from tests.fake_booking import BookingTables, FakeBookingUnitOfWork

EXPIRES = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=10)
UnitOfWorkFactory = Callable[[], BookingUnitOfWork]
# Outbox rows these tests commit are published by any booking relay of the test session: to a topic no one reads.
UNCONSUMED = "contract.test.outbox"


@pytest.fixture(params=["fake", "postgres"])
async def setting(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> tuple[str, UnitOfWorkFactory]:
    spec = small_event(rows=2)
    if request.param == "fake":
        tables = BookingTables()
        tables.add_event(spec)
        return spec.event_id, lambda: FakeBookingUnitOfWork(tables)
    async with pool.acquire() as con:
        await create_event(con, spec)
    return spec.event_id, lambda: PostgresBookingUnitOfWork(pool)


def a_hold(event_id: str, *seats: str, user: str = "fan") -> events.SeatsReserved:
    return events.SeatsReserved(f"req-{uuid.uuid4()}", event_id, user, str(uuid.uuid4()), list(seats),
                                Decimal("150.00") * len(seats), "USD", EXPIRES)


async def committed_hold(unit_of_work: UnitOfWorkFactory, hold: events.SeatsReserved, email: str = "") -> None:
    async with unit_of_work() as uow:
        await uow.seats.hold([hold])
        await uow.bookings.add([hold], {hold.request_id: email})
        await uow.commit()


async def seat_states(unit_of_work: UnitOfWorkFactory, event_id: str, *seats: str) -> dict[str, tuple[str, str | None]]:
    async with unit_of_work() as uow:
        maps = await uow.seats.lock([event_id], [(event_id, s) for s in seats])
    return {s.seat_id: (s.status.value, s.booking_id) for s in maps[event_id].seats.values()}


async def stored_booking(unit_of_work: UnitOfWorkFactory, booking_id: str) -> Booking:
    async with unit_of_work() as uow:
        [booking] = await uow.bookings.lock([booking_id])
    return booking


async def test_lock_gives_the_maps_of_events_that_exist_with_the_asked_seats(
        setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    async with unit_of_work() as uow:
        maps = await uow.seats.lock([event_id, "no_such_event"], [(event_id, "A1"), (event_id, "B2"), (event_id, "Z9")])
    assert list(maps) == [event_id]
    seat_map = maps[event_id]
    assert seat_map.currency == "USD" and sorted(seat_map.seats) == ["A1", "B2"]
    assert (seat_map.seats["A1"].price, seat_map.seats["B2"].price) == (Decimal("150.00"), Decimal("20.00"))
    assert seat_map.seats["A1"].status is SeatStatus.AVAILABLE and seat_map.seats["A1"].booking_id is None


async def test_a_hold_reserves_its_seats_and_adds_a_pending_booking(setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    hold = a_hold(event_id, "A1", "A2")
    await committed_hold(unit_of_work, hold, "fan@example.com")

    assert await seat_states(unit_of_work, event_id, "A1", "A2", "A3") == {
        "A1": ("RESERVED", hold.booking_id), "A2": ("RESERVED", hold.booking_id), "A3": ("AVAILABLE", None)}
    booking = await stored_booking(unit_of_work, hold.booking_id)
    assert (booking.status, booking.seat_ids, booking.amount, booking.expires_at, booking.email, booking.user_id) == (
        BookingStatus.PENDING, ["A1", "A2"], Decimal("300.00"), EXPIRES, "fan@example.com", "fan")
    async with unit_of_work() as uow:
        assert await uow.bookings.seats_per_buyer([(event_id, "fan"), (event_id, "nobody")]) == {(event_id, "fan"): 2}


async def test_holding_a_seat_that_is_not_available_is_refused(setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    first = a_hold(event_id, "A1")
    await committed_hold(unit_of_work, first)
    with pytest.raises(ConcurrentHoldDetected):
        async with unit_of_work() as uow:
            await uow.seats.hold([a_hold(event_id, "A2", "A1")])
    assert await seat_states(unit_of_work, event_id, "A1", "A2") == {
        "A1": ("RESERVED", first.booking_id), "A2": ("AVAILABLE", None)}


async def test_without_commit_nothing_is_kept(setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    hold = a_hold(event_id, "A3")
    async with unit_of_work() as uow:
        await uow.seats.hold([hold])
        await uow.bookings.add([hold], {})
        await uow.outbox.add([Outgoing(UNCONSUMED, event_id.encode(), b"{}")])
    assert uow.outbox.written == []
    assert await seat_states(unit_of_work, event_id, "A3") == {"A3": ("AVAILABLE", None)}
    async with unit_of_work() as uow:
        assert await uow.bookings.lock([hold.booking_id]) == []


async def test_a_savepoint_undoes_only_its_own_writes(setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    kept, undone = a_hold(event_id, "A4"), a_hold(event_id, "A5")
    async with unit_of_work() as uow:
        await uow.seats.hold([kept])
        await uow.outbox.add([Outgoing(UNCONSUMED, event_id.encode(), b"kept")])
        with pytest.raises(SeatsOutOfStep):
            async with uow.savepoint():
                await uow.seats.hold([undone])
                await uow.outbox.add([Outgoing(UNCONSUMED, event_id.encode(), b"undone")])
                raise SeatsOutOfStep("stop here")
        await uow.commit()
    assert [r.payload for r in uow.outbox.written] == [b"kept"]
    assert await seat_states(unit_of_work, event_id, "A4", "A5") == {
        "A4": ("RESERVED", kept.booking_id), "A5": ("AVAILABLE", None)}


async def test_saving_a_booking_writes_what_it_recorded(setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    confirmed, released = a_hold(event_id, "B1"), a_hold(event_id, "B2", "B3")
    for hold in (confirmed, released):
        await committed_hold(unit_of_work, hold)
    async with unit_of_work() as uow:
        locked = {b.booking_id: b for b in await uow.bookings.lock([released.booking_id, confirmed.booking_id])}
        paid, dropped = locked[confirmed.booking_id], locked[released.booking_id]
        paid.start_payment("pay_1", Decimal("150.00"), EXPIRES - timedelta(minutes=1))
        paid.confirm()
        dropped.cancel()
        await uow.bookings.save([paid, dropped])
        await uow.commit()

    assert await seat_states(unit_of_work, event_id, "B1", "B2", "B3") == {
        "B1": ("BOOKED", confirmed.booking_id), "B2": ("AVAILABLE", None), "B3": ("AVAILABLE", None)}
    paid_now, dropped_now = (await stored_booking(unit_of_work, confirmed.booking_id),
                             await stored_booking(unit_of_work, released.booking_id))
    assert (paid_now.status, paid_now.payment_id) == (BookingStatus.CONFIRMED, "pay_1")
    assert dropped_now.status is BookingStatus.CANCELLED
    async with unit_of_work() as uow:  # released seats no longer count against the buyer
        assert await uow.bookings.seats_per_buyer([(event_id, "fan")]) == {(event_id, "fan"): 1}


async def test_releasing_seats_the_booking_does_not_hold_is_refused(setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    hold = a_hold(event_id, "B4")
    await committed_hold(unit_of_work, hold)
    async with unit_of_work() as uow:
        [booking] = await uow.bookings.lock([hold.booking_id])
    impostor = Booking(booking.booking_id, event_id, "fan", ["B5"], booking.amount, "USD", BookingStatus.PENDING,
                       EXPIRES)
    impostor.cancel()
    with pytest.raises(SeatsOutOfStep):
        async with unit_of_work() as uow:
            await uow.bookings.save([impostor])
    assert (await stored_booking(unit_of_work, hold.booking_id)).status is BookingStatus.PENDING


async def held_bookings(unit_of_work: UnitOfWorkFactory, event_id: str, *seat_sets: tuple[str, ...]) -> list[str]:
    holds = [a_hold(event_id, *seats) for seats in seat_sets]
    for hold in holds:
        await committed_hold(unit_of_work, hold)
    return [h.booking_id for h in holds]


async def payments_started_together(unit_of_work: UnitOfWorkFactory, ids: list[str]) -> None:
    """Starts a payment for each booking, all saved at once."""
    async with unit_of_work() as uow:
        locked = await uow.bookings.lock(ids)
        for booking in locked:
            booking.start_payment(f"pay_{booking.booking_id}", booking.amount, EXPIRES - timedelta(minutes=1))
        await uow.bookings.save(locked)
        await uow.commit()


async def test_saving_several_payment_requests_at_once_writes_each(setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    ids = await held_bookings(unit_of_work, event_id, ("A1",), ("A2", "A3"), ("B1",))
    await payments_started_together(unit_of_work, ids)

    for booking_id in ids:
        stored = await stored_booking(unit_of_work, booking_id)
        assert (stored.status, stored.payment_id) == (BookingStatus.PAYING, f"pay_{booking_id}")
    assert set((await seat_states(unit_of_work, event_id, "A1", "A2", "A3", "B1")).values()) == {
        ("RESERVED", b) for b in ids}


async def confirmed_together(unit_of_work: UnitOfWorkFactory, ids: list[str], refunded: str | None = None) -> None:
    """Pays and confirms the bookings in one save each (`refunded` is then refunded at once, as a payment for a
    called-off event is)."""
    await payments_started_together(unit_of_work, ids)
    async with unit_of_work() as uow:
        locked = await uow.bookings.lock(ids)
        for booking in locked:
            booking.confirm()
            if booking.booking_id == refunded:
                booking.start_refund(f"refund_{booking.booking_id}")
        await uow.bookings.save(locked)
        await uow.commit()


async def test_saving_several_confirmations_at_once_books_all_their_seats(
        setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    ids = await held_bookings(unit_of_work, event_id, ("A1",), ("A2", "A3"), ("B1",))
    await confirmed_together(unit_of_work, ids, refunded=ids[2])

    assert await seat_states(unit_of_work, event_id, "A1", "A2", "A3", "B1", "B2") == {
        "A1": ("BOOKED", ids[0]), "A2": ("BOOKED", ids[1]), "A3": ("BOOKED", ids[1]), "B1": ("BOOKED", ids[2]),
        "B2": ("AVAILABLE", None)}
    stored = [await stored_booking(unit_of_work, b) for b in ids]
    assert [(b.status, b.payment_id, b.refund_id) for b in stored] == [
        (BookingStatus.CONFIRMED, f"pay_{ids[0]}", None), (BookingStatus.CONFIRMED, f"pay_{ids[1]}", None),
        (BookingStatus.REFUNDING, f"pay_{ids[2]}", f"refund_{ids[2]}")]


async def test_a_confirmation_whose_seats_are_not_reserved_for_it_refuses_the_whole_save(
        setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    fine, other, neighbour = await held_bookings(unit_of_work, event_id, ("A4",), ("A5",), ("A6",))
    async with unit_of_work() as uow:
        locked = await uow.bookings.lock([fine, other])
        for booking in locked:
            booking.start_payment("pay_1", booking.amount, EXPIRES - timedelta(minutes=1))
        await uow.bookings.save(locked)
        await uow.commit()

    with pytest.raises(SeatsOutOfStep):
        async with unit_of_work() as uow:
            locked = {b.booking_id: b for b in await uow.bookings.lock([fine, other])}
            # It says it holds A6 too, which is RESERVED for its neighbour.
            impostor = dataclasses.replace(locked[other], seat_ids=["A5", "A6"])
            for booking in (locked[fine], impostor):
                booking.confirm()
            await uow.bookings.save([locked[fine], impostor])
            await uow.commit()
    assert await seat_states(unit_of_work, event_id, "A4", "A5", "A6") == {
        "A4": ("RESERVED", fine), "A5": ("RESERVED", other), "A6": ("RESERVED", neighbour)}
    assert [(await stored_booking(unit_of_work, b)).status for b in (fine, other)] == [BookingStatus.PAYING] * 2


async def test_saving_many_bookings_takes_one_statement_per_kind_of_change(pool: asyncpg.Pool) -> None:
    spec = small_event(rows=2)
    async with pool.acquire() as con:
        await create_event(con, spec)
    unit_of_work = lambda: PostgresBookingUnitOfWork(pool)  # noqa: E731
    confirming = await held_bookings(unit_of_work, spec.event_id, ("A1",), ("A2", "A3"), ("B1",))
    asking = await held_bookings(unit_of_work, spec.event_id, ("B2",), ("B3",))
    async with unit_of_work() as uow:
        locked = await uow.bookings.lock(confirming)
        for booking in locked:
            booking.start_payment("pay_1", booking.amount, EXPIRES - timedelta(minutes=1))
        await uow.bookings.save(locked)
        await uow.commit()

    statements: list[str] = []
    async with pool.acquire() as con, con.transaction():
        bookings = PostgresBookings(con)
        locked = await bookings.lock(confirming + asking)
        for booking in locked:
            if booking.booking_id in confirming:
                booking.confirm()
            else:
                booking.start_payment("pay_2", booking.amount, EXPIRES - timedelta(minutes=1))
        with con.query_logger(lambda query: statements.append(query.query)):
            await bookings.save(locked)
    # The commit's round trip has run the logger's callbacks (asyncpg calls them soon after each statement).
    assert len(statements) == 3  # the payments, the confirmed seats, the confirmed bookings
    assert set((await seat_states(unit_of_work, spec.event_id, "A1", "A2", "A3", "B1", "B2")).values()) == {
        ("BOOKED", b) for b in confirming} | {("RESERVED", asking[0])}


async def test_request_outcomes_and_change_numbers(setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    outcome = StoredOutcome(f"req-{uuid.uuid4()}", event_id, "hash", "seat.reserved", b'{"answer": 1}')
    async with unit_of_work() as uow:
        await uow.requests.add([outcome])
        held, confirmed = SeatCounts(-3, 3, 0), SeatCounts(0, -2, 2)
        assert await uow.sequence.advance({event_id: (3, held), "no_such_event": (1, held)}) == {
            event_id: CountsAt(3, SeatCounts(17, 3, 0))}  # 20 seats
        assert await uow.sequence.advance({event_id: (2, confirmed)}) == {event_id: CountsAt(5, SeatCounts(17, 1, 2))}
        await uow.commit()
    async with unit_of_work() as uow:
        assert await uow.requests.find([outcome.request_id, "req-unknown"]) == {outcome.request_id: outcome}


async def test_the_seating_of_an_event_is_its_layout_and_its_free_seats_at_a_change_number(
        setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    await committed_hold(unit_of_work, a_hold(event_id, "A2", "B1"))
    async with unit_of_work() as uow:
        numbers = await uow.seats.change_numbers([event_id, "no_such_event"])
        await uow.sequence.advance({event_id: (3, SeatCounts())})
        seq, free = await uow.seats.free_seats(event_id)
        layout = await uow.seats.layout(event_id)
        await uow.commit()
    assert numbers == {event_id: 0} and seq == 3
    assert free == {f"{row}{n}" for row in "AB" for n in range(1, 11)} - {"A2", "B1"}
    placed = {s.seat_id: s for s in layout}
    assert len(placed) == 20 and sorted(s.rank for s in layout) == list(range(20))
    a1, b10 = placed["A1"], placed["B10"]
    assert (a1.section, a1.row, a1.number, a1.category_id, a1.price, a1.rank) == (
        "Main", "A", 1, "std", Decimal("150.00"), 0)
    assert (b10.row, b10.number, b10.category_id, b10.rank) == ("B", 10, "cheap", 19)


@pytest.mark.parametrize("kind", ["fake", "postgres"])
async def test_an_organisers_best_order_ranks_the_seats_it_names_first(kind: str, pool: asyncpg.Pool) -> None:
    spec = dataclasses.replace(small_event(rows=2, seats=3), best_order=("B", "A3"))
    unit_of_work: UnitOfWorkFactory
    if kind == "fake":
        tables = BookingTables()
        tables.add_event(spec)
        unit_of_work = lambda: FakeBookingUnitOfWork(tables)  # noqa: E731
    else:
        async with pool.acquire() as con:
            await create_event(con, spec)
        unit_of_work = lambda: PostgresBookingUnitOfWork(pool)  # noqa: E731
    async with unit_of_work() as uow:
        layout = await uow.seats.layout(spec.event_id)
    assert [s.seat_id for s in sorted(layout, key=lambda s: s.rank)] == ["B1", "B2", "B3", "A3", "A1", "A2"]


async def test_a_waiting_list_numbers_its_entries_and_keeps_their_status(
        setting: tuple[str, UnitOfWorkFactory]) -> None:
    event_id, unit_of_work = setting
    hold = a_hold(event_id, "A1")
    await committed_hold(unit_of_work, hold)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    async with unit_of_work() as uow:
        stored = [await uow.waitlist.add(WaitlistEntry(waitlist_id, event_id, f"u{i}", "", i + 1, 0), f"join-{i}")
                  for i, waitlist_id in enumerate(ids)]
        await uow.commit()
    assert [e.position for e in stored] == [1, 2, 3] and {e.status for e in stored} == {WaitlistStatus.WAITING}
    async with unit_of_work() as uow:
        assert (await uow.waitlist.joined_by("join-1")) == stored[1]
        assert (await uow.waitlist.waiting_for(event_id, "u2")) == stored[2]
        assert await uow.waitlist.ahead_of(stored[2]) == 2
        first = await uow.waitlist.find(ids[0])
        assert first is not None
        first.offer(hold.booking_id)
        await uow.waitlist.save([first])
        await uow.commit()
    async with unit_of_work() as uow:
        waiting = await uow.waitlist.waiting([event_id, "no_such_event"], most=1)
        offered = await uow.waitlist.offered_with([hold.booking_id])
        behind = await uow.waitlist.ahead_of(stored[2])
    assert [e.waitlist_id for e in waiting[event_id]] == [ids[1]] and list(waiting) == [event_id]
    assert [(e.waitlist_id, e.status, e.booking_id) for e in offered] == [
        (ids[0], WaitlistStatus.OFFERED, hold.booking_id)]
    assert behind == 1
