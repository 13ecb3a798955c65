"""The booking service's unit of work on PostgreSQL: one connection, one transaction, its repositories.

Every write is a set-based statement over arrays (one round trip per kind of row, whatever the batch size),
and every write that takes or gives back seats carries its own guard: seats are locked in (event, seat)
order, a hold only updates seats still AVAILABLE, a release or confirmation only seats RESERVED for that
booking. A guard that refuses raises, and the transaction is rolled back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg

from boxoffice.adapters.postgres_uow import PostgresUnitOfWork
from boxoffice.domain import events
from boxoffice.domain.allocation import PlacedSeat
from boxoffice.domain.model import Booking, BookingStatus, Seat, SeatMap, SeatStatus
from boxoffice.domain.seat_counts import CountsAt, SeatCounts
from boxoffice.domain.waitlist import WaitlistEntry, WaitlistStatus
from boxoffice.service_layer.booking_ports import (
    ConcurrentHoldDetected,
    SaleGate,
    SeatsOutOfStep,
    StoredOutcome,
)

_LOCK_SEATS = """
    SELECT s.event_id, s.seat_id, s.status, s.price, s.booking_id
    FROM seats s JOIN unnest($1::text[], $2::text[]) AS wanted(event_id, seat_id)
      ON s.event_id = wanted.event_id AND s.seat_id = wanted.seat_id
    ORDER BY s.event_id, s.seat_id
"""

_HOLD_SEATS = """
    UPDATE seats s SET status = 'RESERVED', booking_id = h.booking_id, updated_at = now()
    FROM unnest($1::text[], $2::text[], $3::uuid[]) AS h(event_id, seat_id, booking_id)
    WHERE s.event_id = h.event_id AND s.seat_id = h.seat_id {condition}
"""

_LAYOUT = """
    SELECT seat_id, section, row_label, seat_number, category_id, price, coalesce(best_rank, position) AS rank
    FROM seats WHERE event_id = $1
"""

# One statement, one snapshot: the free seats are exactly those as of the change number.
_FREE_SEATS = """
    SELECT change_seq, array(SELECT seat_id FROM seats WHERE event_id = $1 AND status = 'AVAILABLE') AS free
    FROM events WHERE event_id = $1
"""

_SEATS_PER_USER = """
    SELECT b.event_id, b.user_id, sum(cardinality(b.seat_ids))::int AS seats
    FROM bookings b JOIN unnest($1::text[], $2::text[]) AS asking(event_id, user_id)
         ON b.user_id = asking.user_id AND b.event_id = asking.event_id
    WHERE b.status IN ('pending', 'paying', 'confirmed')
    GROUP BY b.event_id, b.user_id
"""

_INSERT_BOOKINGS = """
    INSERT INTO bookings (booking_id, request_id, event_id, user_id, status, seat_ids, amount, currency, expires_at,
                          email)
    SELECT b.booking_id, b.request_id, b.event_id, b.user_id, 'pending',
           string_to_array(b.seat_ids, ','), b.amount, b.currency, b.expires_at, b.email
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[], $7::text[],
                $8::timestamptz[], $9::text[])
         AS b(booking_id, request_id, event_id, user_id, seat_ids, amount, currency, expires_at, email)
"""

_INSERT_BOOKING_SEATS = """
    INSERT INTO booking_seats (booking_id, event_id, seat_id)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
"""

# A hold gives back RESERVED seats; a refund gives back BOOKED ones.
_RELEASE_SEATS = """
    UPDATE seats s SET status = 'AVAILABLE', booking_id = NULL, updated_at = now()
    FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[]) AS r(event_id, seat_id, booking_id, was)
    WHERE s.event_id = r.event_id AND s.seat_id = r.seat_id AND s.booking_id = r.booking_id
      AND s.status = r.was
"""

_BOOK_SEATS = """
    UPDATE seats s SET status = 'BOOKED', updated_at = now()
    FROM unnest($1::text[], $2::text[], $3::uuid[]) AS c(event_id, seat_id, booking_id)
    WHERE s.event_id = c.event_id AND s.seat_id = c.seat_id AND s.booking_id = c.booking_id
      AND s.status = 'RESERVED'
"""

_CONFIRM_BOOKINGS = """
    UPDATE bookings SET status = 'confirmed', decided_at = now(), updated_at = now()
    WHERE booking_id = ANY($1::uuid[])
"""

_START_PAYMENTS = """
    UPDATE bookings b SET status = 'paying', payment_id = p.payment_id, payment_requested_at = now(),
                          updated_at = now()
    FROM unnest($1::uuid[], $2::text[]) AS p(booking_id, payment_id)
    WHERE b.booking_id = p.booking_id
"""

_END_BOOKINGS = """
    UPDATE bookings b SET status = e.status, end_reason = e.reason, decided_at = now(), updated_at = now()
    FROM unnest($1::uuid[], $2::text[], $3::text[]) AS e(booking_id, status, reason)
    WHERE b.booking_id = e.booking_id
"""

_FIND_REQUESTS = """
    SELECT request_id, event_id, body_hash, outcome_topic, outcome FROM booking_requests
    WHERE request_id = ANY($1)
"""

_INSERT_REQUESTS = """
    INSERT INTO booking_requests (request_id, event_id, body_hash, outcome_topic, outcome)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])
"""

_ADVANCE_SEQUENCE = """
    UPDATE events e SET change_seq = e.change_seq + d.n, seats_available = e.seats_available + d.available,
                        seats_reserved = e.seats_reserved + d.reserved, seats_booked = e.seats_booked + d.booked
    FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::int[]) AS d(event_id, n, available, reserved, booked)
    WHERE e.event_id = d.event_id
    RETURNING e.event_id, e.change_seq, e.seats_available, e.seats_reserved, e.seats_booked
"""


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


def _changed(status: str) -> int:
    return int(status.split()[-1])


class PostgresSeats:
    def __init__(self, con: asyncpg.Connection, seat_check: bool,
                 after_lock: Callable[[], Awaitable[None]] | None) -> None:
        self._con, self._seat_check, self._after_lock = con, seat_check, after_lock

    async def lock(self, event_ids: list[str], seats: list[tuple[str, str]]) -> dict[str, SeatMap]:
        # KEY SHARE: a first on-sale being set up (which locks the event's row FOR UPDATE) waits for these holds,
        # or these holds for it, and then read its sale's gate (waiting_rooms.gates, later in this transaction).
        currencies = await self._con.fetch(
            "SELECT event_id, currency, status, hold_seconds FROM events WHERE event_id = ANY($1) FOR KEY SHARE",
            event_ids)
        lock = " FOR UPDATE OF s" if self._seat_check else ""
        rows = await self._con.fetch(_LOCK_SEATS + lock, [e for e, _ in seats], [s for _, s in seats])
        if self._after_lock is not None:
            await self._after_lock()
        maps = {r["event_id"]: SeatMap(r["event_id"], r["currency"].strip(), {}, cancelled=r["status"] == "cancelled",
                                       hold_time=timedelta(seconds=r["hold_seconds"]) if r["hold_seconds"] else None)
                for r in currencies}
        for r in rows:
            maps[r["event_id"]].seats[r["seat_id"]] = Seat(
                r["seat_id"], SeatStatus(r["status"]), r["price"], str(r["booking_id"]) if r["booking_id"] else None)
        return maps

    async def hold(self, holds: list[events.SeatsReserved]) -> None:
        if not holds:
            return
        seat_rows = sorted((h.event_id, s, h.booking_id) for h in holds for s in h.seat_ids)
        condition = "AND s.status = 'AVAILABLE'" if self._seat_check else ""
        updated = await self._con.execute(_HOLD_SEATS.format(condition=condition), *_columns(seat_rows))
        if _changed(updated) != len(seat_rows):
            raise ConcurrentHoldDetected(f"expected to hold {len(seat_rows)} seats, held {updated}")


    async def change_numbers(self, event_ids: list[str]) -> dict[str, int]:
        rows = await self._con.fetch("SELECT event_id, change_seq FROM events WHERE event_id = ANY($1)", event_ids)
        return {r["event_id"]: r["change_seq"] for r in rows}

    async def layout(self, event_id: str) -> list[PlacedSeat]:
        return [PlacedSeat(r["seat_id"], r["section"], r["row_label"], r["seat_number"], r["category_id"], r["price"],
                           r["rank"]) for r in await self._con.fetch(_LAYOUT, event_id)]

    async def free_seats(self, event_id: str) -> tuple[int, set[str]]:
        row = await self._con.fetchrow(_FREE_SEATS, event_id)
        return (0, set()) if row is None else (row["change_seq"], set(row["free"]))

    async def placed(self, event_id: str, seat_ids: list[str]) -> list[PlacedSeat]:
        return [PlacedSeat(r["seat_id"], r["section"], r["row_label"], r["seat_number"], r["category_id"], r["price"],
                           r["rank"]) for r in await self._con.fetch(_LAYOUT + " AND seat_id = ANY($2)", event_id,
                                                                     seat_ids)]


def _booking(r: asyncpg.Record) -> Booking:
    return Booking(str(r["booking_id"]), r["event_id"], r["user_id"], list(r["seat_ids"]), r["amount"],
                   r["currency"].strip(), BookingStatus(r["status"]), r["expires_at"], r["payment_id"], r["email"],
                   r["refund_id"])


class PostgresEventStates:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def call_off(self, event_id: str) -> bool | None:
        status = await self._con.fetchval("SELECT status FROM events WHERE event_id = $1 FOR UPDATE", event_id)
        if status is None:
            return None
        if status == "cancelled":
            return False
        await self._con.execute("UPDATE events SET status = 'cancelled', cancelled_at = now() WHERE event_id = $1",
                                event_id)
        return True

    async def cancelled(self, event_ids: list[str]) -> set[str]:
        rows = await self._con.fetch(
            "SELECT event_id FROM events WHERE event_id = ANY($1) AND status = 'cancelled'", event_ids)
        return {r["event_id"] for r in rows}

    async def lock_called_off(self, event_id: str) -> bool | None:
        status = await self._con.fetchval(
            "SELECT status FROM events WHERE event_id = $1 FOR NO KEY UPDATE", event_id)
        return None if status is None else status == "cancelled"


class PostgresBookings:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def add(self, holds: list[events.SeatsReserved], emails: dict[str, str]) -> None:
        if not holds:
            return
        await self._con.execute(_INSERT_BOOKINGS, *_columns([
            (h.booking_id, h.request_id, h.event_id, h.user_id, ",".join(h.seat_ids), h.amount, h.currency,
             h.expires_at, emails.get(h.request_id, "")) for h in holds]))
        event_ids, seat_ids, booking_ids = _columns(sorted(
            (h.event_id, s, h.booking_id) for h in holds for s in h.seat_ids))
        await self._con.execute(_INSERT_BOOKING_SEATS, booking_ids, event_ids, seat_ids)

    async def seats_per_buyer(self, buyers: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        if not buyers:
            return {}
        rows = await self._con.fetch(_SEATS_PER_USER, [e for e, _ in buyers], [u for _, u in buyers])
        return {(r["event_id"], r["user_id"]): r["seats"] for r in rows}

    async def lock(self, booking_ids: list[str]) -> list[Booking]:
        rows = await self._con.fetch(
            "SELECT * FROM bookings WHERE booking_id = ANY($1::uuid[]) ORDER BY booking_id FOR UPDATE",
            sorted(set(booking_ids)))
        return [_booking(r) for r in rows]

    async def live_of_event(self, event_id: str) -> list[Booking]:
        rows = await self._con.fetch(
            "SELECT * FROM bookings WHERE event_id = $1 AND status IN ('pending', 'paying', 'confirmed') "
            "ORDER BY booking_id FOR UPDATE", event_id)
        return [_booking(r) for r in rows]

    async def let_in(self, booking_ids: list[str]) -> dict[str, list[str]]:
        rows = await self._con.fetch(
            "SELECT booking_id, array_agg(seat_id ORDER BY seat_id) AS seat_ids FROM ticket_entries "
            "WHERE booking_id = ANY($1::uuid[]) GROUP BY booking_id", sorted(set(booking_ids)))
        return {str(r["booking_id"]): list(r["seat_ids"]) for r in rows}

    async def save(self, bookings: list[Booking]) -> None:
        """One statement per kind of change for all the bookings, kinds in lifecycle order: that is also the
        order of one booking's events (a payment landing for a called-off event confirms, then refunds)."""
        recorded = [(b, e) for b in bookings for e in b.events]
        payments = [(b.booking_id, e.payment_id) for b, e in recorded if isinstance(e, events.PaymentRequested)]
        if payments:
            await self._con.execute(_START_PAYMENTS, *_columns(payments))
        confirmed = [b for b, e in recorded if isinstance(e, events.BookingConfirmed)]
        if confirmed:
            await self._book(confirmed)
        for booking, event in recorded:
            if isinstance(event, events.RefundRequested):
                await self._con.execute(
                    "UPDATE bookings SET status = 'refunding', refund_id = $2, updated_at = now() "
                    "WHERE booking_id = $1 AND status = 'confirmed'", booking.booking_id, event.refund_id)
        for booking, event in recorded:
            if isinstance(event, events.RefundFailed):
                await self._con.execute(
                    "UPDATE bookings SET status = 'confirmed', updated_at = now() "
                    "WHERE booking_id = $1 AND status = 'refunding'", booking.booking_id)
        released = [(b, e) for b, e in recorded if isinstance(e, events.SeatsReleased)]
        if released:
            await self._release(released)

    async def _book(self, confirmed: list[Booking]) -> None:
        seats = sorted((b.event_id, s, b.booking_id) for b in confirmed for s in b.seat_ids)
        booked = await self._con.execute(_BOOK_SEATS, *_columns(seats))
        if _changed(booked) != len(seats):
            which = f"booking {confirmed[0].booking_id}" if len(confirmed) == 1 else f"{len(confirmed)} bookings"
            raise SeatsOutOfStep(f"confirming {which}: {booked}, expected {len(seats)} seats")
        await self._con.execute(_CONFIRM_BOOKINGS, [b.booking_id for b in confirmed])

    async def _release(self, released: list[tuple[Booking, events.SeatsReleased]]) -> None:
        seats = sorted((b.event_id, s, b.booking_id, "BOOKED" if e.reason == "refunded" else "RESERVED")
                       for b, e in released for s in b.seat_ids)
        done = await self._con.execute(_RELEASE_SEATS, *_columns(seats))
        if _changed(done) != len(seats):
            raise SeatsOutOfStep(f"releasing {len(released)} bookings: {done}, expected {len(seats)} seats")
        ids = [b.booking_id for b, _ in released]
        await self._con.execute("UPDATE booking_seats SET live = false WHERE booking_id = ANY($1::uuid[])", ids)
        await self._con.execute(_END_BOOKINGS, ids, [b.status.value for b, _ in released],
                                [e.reason for _, e in released])


def _entry(r: asyncpg.Record) -> WaitlistEntry:
    return WaitlistEntry(str(r["waitlist_id"]), r["event_id"], r["user_id"], r["email"], r["quantity"], r["position"],
                         WaitlistStatus(r["status"]), str(r["booking_id"]) if r["booking_id"] else None)


_WAITLIST_COLUMNS = "waitlist_id, event_id, user_id, email, quantity, position, status, booking_id"


class PostgresWaitlist:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def find(self, waitlist_id: str) -> WaitlistEntry | None:
        row = await self._con.fetchrow(
            f"SELECT {_WAITLIST_COLUMNS} FROM waitlist WHERE waitlist_id = $1::uuid FOR UPDATE", waitlist_id)
        return _entry(row) if row else None

    async def joined_by(self, request_id: str) -> WaitlistEntry | None:
        row = await self._con.fetchrow(f"SELECT {_WAITLIST_COLUMNS} FROM waitlist WHERE request_id = $1", request_id)
        return _entry(row) if row else None

    async def waiting_for(self, event_id: str, user_id: str) -> WaitlistEntry | None:
        row = await self._con.fetchrow(
            f"SELECT {_WAITLIST_COLUMNS} FROM waitlist WHERE event_id = $1 AND user_id = $2 "
            "AND status IN ('waiting', 'offered') "
            "FOR UPDATE", event_id, user_id)
        return _entry(row) if row else None

    async def add(self, entry: WaitlistEntry, request_id: str) -> WaitlistEntry:
        row = await self._con.fetchrow(
            f"""WITH numbered AS (
                    UPDATE events SET waitlist_seq = waitlist_seq + 1 WHERE event_id = $2 RETURNING waitlist_seq)
                INSERT INTO waitlist (waitlist_id, request_id, event_id, user_id, email, quantity, position)
                SELECT $1::uuid, $6, $2, $3, $4, $5, waitlist_seq FROM numbered RETURNING {_WAITLIST_COLUMNS}""",
            entry.waitlist_id, entry.event_id, entry.user_id, entry.email, entry.quantity, request_id)
        if row is None:
            raise LookupError(f"event {entry.event_id} does not exist")
        return _entry(row)

    async def waiting(self, event_ids: list[str], most: int) -> dict[str, list[WaitlistEntry]]:
        rows = await self._con.fetch(
            f"""SELECT {_WAITLIST_COLUMNS} FROM waitlist w
                WHERE w.waitlist_id IN (
                    SELECT first.waitlist_id FROM unnest($1::text[]) AS e(event_id),
                    LATERAL (SELECT waitlist_id FROM waitlist WHERE event_id = e.event_id AND status = 'waiting'
                             ORDER BY position LIMIT $2) AS first)
                ORDER BY w.event_id, w.position FOR UPDATE""", sorted(event_ids), most)
        found: dict[str, list[WaitlistEntry]] = {}
        for r in rows:
            found.setdefault(r["event_id"], []).append(_entry(r))
        return found

    async def offered_with(self, booking_ids: list[str]) -> list[WaitlistEntry]:
        rows = await self._con.fetch(
            f"SELECT {_WAITLIST_COLUMNS} FROM waitlist WHERE booking_id = ANY($1::uuid[]) ORDER BY waitlist_id "
            "FOR UPDATE", booking_ids)
        return [_entry(r) for r in rows]

    async def ahead_of(self, entry: WaitlistEntry) -> int:
        return int(await self._con.fetchval(
            "SELECT count(*) FROM waitlist WHERE event_id = $1 AND status = 'waiting' AND position < $2",
            entry.event_id, entry.position))

    async def save(self, entries: list[WaitlistEntry]) -> None:
        if entries:
            await self._con.execute(
                """UPDATE waitlist w SET status = e.status, booking_id = e.booking_id, updated_at = now()
                   FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS e(waitlist_id, status, booking_id)
                   WHERE w.waitlist_id = e.waitlist_id""",
                [e.waitlist_id for e in entries], [e.status.value for e in entries], [e.booking_id for e in entries])


class PostgresRequestOutcomes:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def find(self, request_ids: list[str]) -> dict[str, StoredOutcome]:
        rows = await self._con.fetch(_FIND_REQUESTS, request_ids)
        return {r["request_id"]: StoredOutcome(r["request_id"], r["event_id"], r["body_hash"], r["outcome_topic"],
                                               r["outcome"]) for r in rows}

    async def add(self, outcomes: list[StoredOutcome]) -> None:
        if outcomes:
            await self._con.execute(_INSERT_REQUESTS, *_columns([
                (o.request_id, o.event_id, o.body_hash, o.topic, o.payload) for o in outcomes]))


class PostgresChangeSequence:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def advance(self, changes: dict[str, tuple[int, SeatCounts]]) -> dict[str, CountsAt]:
        event_ids = sorted(changes)
        moved = [changes[e][1] for e in event_ids]
        rows = await self._con.fetch(_ADVANCE_SEQUENCE, event_ids, [changes[e][0] for e in event_ids],
                                     [m.available for m in moved], [m.reserved for m in moved],
                                     [m.booked for m in moved])
        return {r["event_id"]: CountsAt(r["change_seq"], SeatCounts(r["seats_available"], r["seats_reserved"],
                                                                      r["seats_booked"])) for r in rows}


class PostgresWaitingRooms:
    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def gates(self, event_ids: list[str]) -> dict[str, SaleGate]:
        rows = await self._con.fetch(
            "SELECT event_id, enabled, opens_at FROM waiting_rooms WHERE event_id = ANY($1)", event_ids)
        return {r["event_id"]: SaleGate(r["enabled"], r["opens_at"]) for r in rows}


class PostgresPaymentRecords:
    """The payment service's tables, read by the booking service (the payment service alone writes them)."""

    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def payment_statuses(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        if not keys:
            return {}
        rows = await self._con.fetch(
            "SELECT p.booking_id::text AS booking_id, p.payment_id, p.status FROM payments p "
            "JOIN unnest($1::uuid[], $2::text[]) AS k(booking_id, payment_id) "
            "ON p.booking_id = k.booking_id AND p.payment_id = k.payment_id",
            [b for b, _ in keys], [p for _, p in keys])
        return {(r["booking_id"], r["payment_id"]): r["status"] for r in rows}

    async def refund_statuses(self, refund_ids: list[str]) -> dict[str, tuple[str, str]]:
        if not refund_ids:
            return {}
        rows = await self._con.fetch(
            "SELECT refund_id, booking_id::text AS booking_id, status FROM refunds WHERE refund_id = ANY($1)",
            refund_ids)
        return {r["refund_id"]: (r["booking_id"], r["status"]) for r in rows}


class PostgresBookingUnitOfWork(PostgresUnitOfWork):
    """seat_check=False drops the row locks and the conditional update: only for the control run of the race
    tests, which must then see a double hold. after_lock runs once the seats are locked (race tests pause
    there, holding the locks)."""

    def __init__(self, pool: asyncpg.Pool, *, seat_check: bool = True,
                 after_lock: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(pool, producer="booking")
        self._seat_check, self._after_lock = seat_check, after_lock
        self.seats: PostgresSeats
        self.bookings: PostgresBookings
        self.waiting_rooms: PostgresWaitingRooms
        self.requests: PostgresRequestOutcomes
        self.sequence: PostgresChangeSequence
        self.waitlist: PostgresWaitlist
        self.events: PostgresEventStates
        self.payment_records: PostgresPaymentRecords

    def _bind(self, con: asyncpg.Connection) -> None:
        super()._bind(con)
        self.seats = PostgresSeats(con, self._seat_check, self._after_lock)
        self.bookings = PostgresBookings(con)
        self.requests = PostgresRequestOutcomes(con)
        self.sequence = PostgresChangeSequence(con)
        self.waitlist = PostgresWaitlist(con)
        self.events = PostgresEventStates(con)
        self.waiting_rooms = PostgresWaitingRooms(con)
        self.payment_records = PostgresPaymentRecords(con)
