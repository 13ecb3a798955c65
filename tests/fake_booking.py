"""An in-memory booking database behind the booking service's ports, for unit tests of its handlers.

It keeps the guards of the PostgreSQL adapter (a hold takes only AVAILABLE seats, a release or a
confirmation only seats RESERVED for that booking), and the contract tests in
tests/integration/test_booking_repositories.py run the same checks on both, so the two cannot drift.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from boxoffice.domain import events
from boxoffice.domain.allocation import PlacedSeat
from boxoffice.domain.catalog import EventSpec
from boxoffice.domain.model import Booking, BookingStatus, Seat, SeatMap, SeatStatus
from boxoffice.domain.seat_counts import CountsAt, SeatCounts
from boxoffice.domain.waitlist import WaitlistEntry, WaitlistStatus
from boxoffice.messages import PAYMENT_FAILED, PAYMENT_SUCCEEDED, REFUND_FAILED, REFUND_SUCCEEDED, Message
from boxoffice.service_layer.booking_ports import ConcurrentHoldDetected, SaleGate, SeatsOutOfStep, StoredOutcome
from boxoffice.service_layer.ports import OutboxRow
from boxoffice.service_layer.unit_of_work import Outgoing

LIVE = (BookingStatus.PENDING, BookingStatus.PAYING, BookingStatus.CONFIRMED)  # bookings that own their seats


@dataclass
class BookingTables:
    currencies: dict[str, str] = field(default_factory=dict)
    seats: dict[tuple[str, str], Seat] = field(default_factory=dict)
    bookings: dict[str, Booking] = field(default_factory=dict)
    end_reasons: dict[str, str] = field(default_factory=dict)
    requests: dict[str, StoredOutcome] = field(default_factory=dict)
    change_seq: dict[str, int] = field(default_factory=dict)
    seat_counts: dict[str, SeatCounts] = field(default_factory=dict)
    waitlist_seq: dict[str, int] = field(default_factory=dict)
    cancelled_events: set[str] = field(default_factory=set)
    hold_times: dict[str, timedelta] = field(default_factory=dict)  # events with a hold time of their own
    layouts: dict[str, list[PlacedSeat]] = field(default_factory=dict)
    waitlist: dict[str, WaitlistEntry] = field(default_factory=dict)
    waitlist_requests: dict[str, str] = field(default_factory=dict)  # join request id → waitlist id
    outbox: list[OutboxRow] = field(default_factory=list)
    waiting_rooms: set[str] = field(default_factory=set)  # events behind an active waiting room
    openings: dict[str, datetime] = field(default_factory=dict)  # on-sales without a waiting room: when they open
    let_in: dict[str, set[str]] = field(default_factory=dict)  # booking id → seats checked in at the door
    # What the payment service recorded: (booking id, payment id) → status; refund id → (booking id, status).
    payments: dict[tuple[str, str], str] = field(default_factory=dict)
    refunds: dict[str, tuple[str, str]] = field(default_factory=dict)

    def record_outcomes(self, messages: list[Message]) -> None:
        """What the payment service commits before it publishes these outcomes (it publishes from its outbox)."""
        for m in messages:
            booking_id = str(m.data.get("bookingId", "")).lower()
            if m.type in (PAYMENT_SUCCEEDED, PAYMENT_FAILED):
                status = "succeeded" if m.type == PAYMENT_SUCCEEDED else "failed"
                self.payments[(booking_id, str(m.data.get("paymentId", "")))] = status
            elif m.type in (REFUND_SUCCEEDED, REFUND_FAILED):
                status = "succeeded" if m.type == REFUND_SUCCEEDED else "failed"
                self.refunds[str(m.data.get("refundId", ""))] = (booking_id, status)

    def add_event(self, spec: EventSpec) -> None:
        self.currencies[spec.event_id] = spec.currency
        if spec.hold_seconds is not None:
            self.hold_times[spec.event_id] = timedelta(seconds=spec.hold_seconds)
        self.change_seq[spec.event_id] = 0
        self.seat_counts[spec.event_id] = SeatCounts(available=len(spec.seats()))
        for seat in spec.seats():
            self.seats[(spec.event_id, seat.seat_id)] = Seat(seat.seat_id, SeatStatus.AVAILABLE, seat.price)
        self.layouts[spec.event_id] = [PlacedSeat(s.seat_id, s.section, s.row, s.number, s.category_id, s.price,
                                                  s.rank) for s in spec.seats()]


class FakeSeats:
    def __init__(self, tables: BookingTables) -> None:
        self._t = tables

    async def lock(self, event_ids: list[str], seats: list[tuple[str, str]]) -> dict[str, SeatMap]:
        maps = {e: SeatMap(e, self._t.currencies[e], {}, cancelled=e in self._t.cancelled_events,
                           hold_time=self._t.hold_times.get(e))
                for e in event_ids if e in self._t.currencies}
        for event_id, seat_id in seats:
            seat = self._t.seats.get((event_id, seat_id))
            if seat is not None and event_id in maps:
                maps[event_id].seats[seat_id] = replace(seat)
        return maps

    async def change_numbers(self, event_ids: list[str]) -> dict[str, int]:
        return {e: self._t.change_seq[e] for e in event_ids if e in self._t.change_seq}

    async def layout(self, event_id: str) -> list[PlacedSeat]:
        return list(self._t.layouts.get(event_id, []))

    async def free_seats(self, event_id: str) -> tuple[int, set[str]]:
        return self._t.change_seq.get(event_id, 0), {
            s for (e, s), seat in self._t.seats.items() if e == event_id and seat.status is SeatStatus.AVAILABLE}

    async def placed(self, event_id: str, seat_ids: list[str]) -> list[PlacedSeat]:
        return [s for s in self._t.layouts.get(event_id, []) if s.seat_id in seat_ids]

    async def hold(self, holds: list[events.SeatsReserved]) -> None:
        for hold in holds:
            for seat_id in hold.seat_ids:
                seat = self._t.seats[(hold.event_id, seat_id)]
                if seat.status is not SeatStatus.AVAILABLE:
                    raise ConcurrentHoldDetected(f"seat {seat_id} is {seat.status}")
                seat.status, seat.booking_id = SeatStatus.RESERVED, hold.booking_id


class FakeBookings:
    def __init__(self, tables: BookingTables) -> None:
        self._t = tables

    async def add(self, holds: list[events.SeatsReserved], emails: dict[str, str]) -> None:
        for h in holds:
            self._t.bookings[h.booking_id] = Booking(
                h.booking_id, h.event_id, h.user_id, list(h.seat_ids), h.amount, h.currency, BookingStatus.PENDING,
                h.expires_at, email=emails.get(h.request_id, ""))

    async def seats_per_buyer(self, buyers: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for b in self._t.bookings.values():
            if (b.event_id, b.user_id) in buyers and b.status in LIVE:
                counts[(b.event_id, b.user_id)] = counts.get((b.event_id, b.user_id), 0) + len(b.seat_ids)
        return counts

    async def lock(self, booking_ids: list[str]) -> list[Booking]:
        return [replace(self._t.bookings[b], seat_ids=list(self._t.bookings[b].seat_ids), events=[])
                for b in sorted(set(booking_ids)) if b in self._t.bookings]

    async def let_in(self, booking_ids: list[str]) -> dict[str, list[str]]:
        return {b: sorted(self._t.let_in[b]) for b in booking_ids if self._t.let_in.get(b)}

    async def live_of_event(self, event_id: str) -> list[Booking]:
        return await self.lock([b.booking_id for b in self._t.bookings.values()
                                if b.event_id == event_id and b.status in LIVE])

    async def save(self, bookings: list[Booking]) -> None:
        # Kind by kind in lifecycle order, as the adapter's set-based statements write them; every confirmation's
        # seats are checked before any is booked, as its one UPDATE counts them all.
        recorded = [(b, e) for b in bookings for e in b.events]
        for booking, event in recorded:
            if isinstance(event, events.PaymentRequested):
                stored = self._t.bookings[booking.booking_id]
                stored.status, stored.payment_id = BookingStatus.PAYING, event.payment_id
        confirmed = [b for b, e in recorded if isinstance(e, events.BookingConfirmed)]
        for seat in [seat for booking in confirmed for seat in self._reserved_seats(booking)]:
            seat.status = SeatStatus.BOOKED
        for booking in confirmed:
            self._t.bookings[booking.booking_id].status = BookingStatus.CONFIRMED
        for booking, event in recorded:
            stored = self._t.bookings[booking.booking_id]
            if isinstance(event, events.RefundRequested) and stored.status is BookingStatus.CONFIRMED:
                stored.status, stored.refund_id = BookingStatus.REFUNDING, event.refund_id
        for booking, event in recorded:
            stored = self._t.bookings[booking.booking_id]
            if isinstance(event, events.RefundFailed) and stored.status is BookingStatus.REFUNDING:
                stored.status = BookingStatus.CONFIRMED
        for booking, event in recorded:
            if isinstance(event, events.SeatsReleased):
                was = SeatStatus.BOOKED if event.reason == "refunded" else SeatStatus.RESERVED
                for seat in self._seats_in(booking, was):
                    seat.status, seat.booking_id = SeatStatus.AVAILABLE, None
                self._t.bookings[booking.booking_id].status = booking.status
                self._t.end_reasons[booking.booking_id] = event.reason

    def _reserved_seats(self, booking: Booking) -> list[Seat]:
        return self._seats_in(booking, SeatStatus.RESERVED)

    def _seats_in(self, booking: Booking, status: SeatStatus) -> list[Seat]:
        seats = [self._t.seats[(booking.event_id, s)] for s in booking.seat_ids]
        if any(s.status is not status or s.booking_id != booking.booking_id for s in seats):
            raise SeatsOutOfStep(f"booking {booking.booking_id}: its seats are not {status.lower()} for it")
        return seats


class FakeRequestOutcomes:
    def __init__(self, tables: BookingTables) -> None:
        self._t = tables

    async def find(self, request_ids: list[str]) -> dict[str, StoredOutcome]:
        return {r: self._t.requests[r] for r in request_ids if r in self._t.requests}

    async def add(self, outcomes: list[StoredOutcome]) -> None:
        for outcome in outcomes:
            if outcome.request_id in self._t.requests:
                raise KeyError(f"request {outcome.request_id} was decided already")
            self._t.requests[outcome.request_id] = outcome


class FakeChangeSequence:
    def __init__(self, tables: BookingTables) -> None:
        self._t = tables

    async def advance(self, changes: dict[str, tuple[int, SeatCounts]]) -> dict[str, CountsAt]:
        for event_id, (n, moved) in changes.items():
            if event_id in self._t.change_seq:
                self._t.change_seq[event_id] += n
                self._t.seat_counts[event_id] += moved
        return {e: CountsAt(self._t.change_seq[e], self._t.seat_counts[e]) for e in changes
                if e in self._t.change_seq}


_outbox_ids = itertools.count(1)


class FakeEventStates:
    def __init__(self, tables: BookingTables) -> None:
        self._t = tables

    async def call_off(self, event_id: str) -> bool | None:
        if event_id not in self._t.currencies:
            return None
        if event_id in self._t.cancelled_events:
            return False
        self._t.cancelled_events.add(event_id)
        return True

    async def cancelled(self, event_ids: list[str]) -> set[str]:
        return self._t.cancelled_events & set(event_ids)

    async def lock_called_off(self, event_id: str) -> bool | None:
        return None if event_id not in self._t.currencies else event_id in self._t.cancelled_events


class FakeWaitlist:
    def __init__(self, tables: BookingTables) -> None:
        self._t = tables

    async def find(self, waitlist_id: str) -> WaitlistEntry | None:
        entry = self._t.waitlist.get(waitlist_id)
        return replace(entry) if entry else None

    async def joined_by(self, request_id: str) -> WaitlistEntry | None:
        waitlist_id = self._t.waitlist_requests.get(request_id)
        return replace(self._t.waitlist[waitlist_id]) if waitlist_id else None

    async def waiting_for(self, event_id: str, user_id: str) -> WaitlistEntry | None:
        return next((replace(e) for e in self._t.waitlist.values() if (e.event_id, e.user_id) == (event_id, user_id)
                     and e.status in (WaitlistStatus.WAITING, WaitlistStatus.OFFERED)), None)

    async def add(self, entry: WaitlistEntry, request_id: str) -> WaitlistEntry:
        if request_id in self._t.waitlist_requests or entry.waitlist_id in self._t.waitlist:
            raise KeyError(f"waiting list entry {entry.waitlist_id} exists already")
        if entry.event_id not in self._t.waitlist_seq:
            self._t.waitlist_seq[entry.event_id] = 0
        self._t.waitlist_seq[entry.event_id] += 1
        stored = replace(entry, position=self._t.waitlist_seq[entry.event_id], status=WaitlistStatus.WAITING,
                         booking_id=None)
        self._t.waitlist[entry.waitlist_id] = stored
        self._t.waitlist_requests[request_id] = entry.waitlist_id
        return replace(stored)

    async def waiting(self, event_ids: list[str], most: int) -> dict[str, list[WaitlistEntry]]:
        found: dict[str, list[WaitlistEntry]] = {}
        for entry in sorted(self._t.waitlist.values(), key=lambda e: (e.event_id, e.position)):
            if entry.event_id in event_ids and entry.status is WaitlistStatus.WAITING \
                    and len(found.get(entry.event_id, [])) < most:
                found.setdefault(entry.event_id, []).append(replace(entry))
        return found

    async def offered_with(self, booking_ids: list[str]) -> list[WaitlistEntry]:
        return [replace(e) for e in self._t.waitlist.values() if e.booking_id in booking_ids]

    async def ahead_of(self, entry: WaitlistEntry) -> int:
        return sum(1 for e in self._t.waitlist.values() if e.event_id == entry.event_id
                   and e.status is WaitlistStatus.WAITING and e.position < entry.position)

    async def save(self, entries: list[WaitlistEntry]) -> None:
        for entry in entries:
            self._t.waitlist[entry.waitlist_id] = replace(entry)


class FakeOutbox:
    def __init__(self, tables: BookingTables) -> None:
        self._t = tables
        self.pending: list[OutboxRow] = []
        self.written: list[OutboxRow] = []

    async def add(self, messages: list[Outgoing]) -> None:
        self.pending += [OutboxRow(next(_outbox_ids), m.topic, m.key, m.payload) for m in messages]


class FakeWaitingRooms:
    def __init__(self, tables: BookingTables) -> None:
        self._t = tables

    async def gates(self, event_ids: list[str]) -> dict[str, SaleGate]:
        gates = {e: SaleGate(False, opens) for e, opens in self._t.openings.items() if e in event_ids}
        active = self._t.waiting_rooms & set(event_ids)
        return gates | {e: SaleGate(True, datetime.min.replace(tzinfo=UTC)) for e in active}


class FakePaymentRecords:
    def __init__(self, tables: BookingTables) -> None:
        self._t = tables

    async def payment_statuses(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        return {k: self._t.payments[k] for k in keys if k in self._t.payments}

    async def refund_statuses(self, refund_ids: list[str]) -> dict[str, tuple[str, str]]:
        return {r: self._t.refunds[r] for r in refund_ids if r in self._t.refunds}


class FakeBookingUnitOfWork:
    """Every `async with` works on a copy of the tables, kept only on commit."""

    def __init__(self, tables: BookingTables) -> None:
        self.tables = tables
        self.committed = False

    async def __aenter__(self) -> FakeBookingUnitOfWork:
        self._work = copy.deepcopy(self.tables)
        self.seats = FakeSeats(self._work)
        self.bookings = FakeBookings(self._work)
        self.requests = FakeRequestOutcomes(self._work)
        self.sequence = FakeChangeSequence(self._work)
        self.waitlist = FakeWaitlist(self._work)
        self.events = FakeEventStates(self._work)
        self.outbox = FakeOutbox(self._work)
        self.waiting_rooms = FakeWaitingRooms(self._work)
        self.payment_records = FakePaymentRecords(self._work)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.outbox.pending = []

    async def commit(self) -> None:
        self._work.outbox += self.outbox.pending
        self.outbox.written += self.outbox.pending
        self.outbox.pending = []
        for name in vars(self.tables):
            setattr(self.tables, name, getattr(self._work, name))
        self.committed = True

    async def rollback(self) -> None:
        self.outbox.pending = []

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        kept, pending = copy.deepcopy(self._work), len(self.outbox.pending)
        try:
            yield
        except BaseException:
            for name in vars(kept):
                setattr(self._work, name, getattr(kept, name))
            del self.outbox.pending[pending:]
            raise

