"""Seats, holds and bookings: the state machine every writer goes through."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from boxoffice.domain import errors, events
from boxoffice.domain.allocation import Refusal, Seating


class SeatStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    RESERVED = "RESERVED"
    BOOKED = "BOOKED"


class BookingStatus(StrEnum):
    PENDING = "pending"
    PAYING = "paying"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    PAYMENT_FAILED = "payment_failed"
    REFUNDING = "refunding"
    REFUNDED = "refunded"


_SHOWN = {BookingStatus.PAYING.value: BookingStatus.PENDING.value,
          BookingStatus.REFUNDING.value: BookingStatus.CONFIRMED.value}


def shown_status(status: str) -> str:
    """A booking's status as the buyer sees it: "paying" and "refunding" are internal, and the booking is as it was
    until the provider answers."""
    return _SHOWN.get(status, status)


def seat_limit_reason(limit: int, owned: int) -> str:
    """Why a buyer holding `owned` seats of an event gets no more (BOXOFFICE_MAX_SEATS_PER_USER)."""
    return f"At most {limit} seats per buyer for this event; you hold {owned}"


@dataclass
class Seat:
    seat_id: str
    status: SeatStatus
    price: Decimal
    booking_id: str | None = None

    def reserve(self, booking_id: str) -> None:
        if self.status is not SeatStatus.AVAILABLE:
            raise errors.SeatUnavailable(f"Seat {self.seat_id} is already {self.status.lower()}")
        self.status, self.booking_id = SeatStatus.RESERVED, booking_id

    def book(self, booking_id: str) -> None:
        if self.status is not SeatStatus.RESERVED or self.booking_id != booking_id:
            raise errors.InvalidTransition(f"Seat {self.seat_id} is not held by booking {booking_id}")
        self.status = SeatStatus.BOOKED

    def release(self, booking_id: str) -> None:
        if self.status is not SeatStatus.RESERVED or self.booking_id != booking_id:
            raise errors.InvalidTransition(f"Seat {self.seat_id} is not held by booking {booking_id}")
        self.status, self.booking_id = SeatStatus.AVAILABLE, None


def unavailable_message(seats: list[Seat]) -> str:
    if len(seats) == 1:
        return f"Seat {seats[0].seat_id} is already {seats[0].status.lower()}"
    names = ", ".join(s.seat_id for s in seats)
    statuses = {s.status for s in seats}
    state = seats[0].status.lower() if len(statuses) == 1 else "taken"
    return f"Seats {names} are already {state}"


@dataclass
class SeatMap:
    """The seats of one event that a batch of requests touches, as they stand in the database."""

    event_id: str
    currency: str
    seats: dict[str, Seat]

    # Seats each buyer holds or owns in this event, for the per-buyer limit; None: no limit.
    seats_per_user: dict[str, int] = field(default_factory=dict)
    per_user_limit: int | None = None
    # Most seats in one booking (BOXOFFICE_MAX_SEATS_PER_BOOKING, set by the service layer); None: no limit.
    per_booking_limit: int | None = None
    # The whole event's seats and which are free, for best-available requests; holds keep it in step.
    seating: Seating | None = None
    # The organiser called the event off: every hold is refused.
    cancelled: bool = False
    # The event's own hold time; None: the booking service's.
    hold_time: timedelta | None = None

    def _called_off(self, request_id: str, user_id: str, seat_ids: list[str]) -> events.ReservationFailed:
        return events.ReservationFailed(request_id=request_id, event_id=self.event_id, user_id=user_id,
                                        seat_ids=seat_ids, code=errors.EventCancelled.code,
                                        reason=f"Event {self.event_id} was cancelled by its organiser")

    def follow(self, seating: Seating) -> None:
        """Best-available requests choose from `seating`; the seats locked here are the truth where they differ."""
        for seat in self.seats.values():
            if seat.status is SeatStatus.AVAILABLE:
                seating.give_back([seat.seat_id])
            else:
                seating.take([seat.seat_id])
        self.seating = seating

    def hold_best(
        self, request_id: str, user_id: str, quantity: int, category_id: str | None, section: str | None,
        booking_id: str, expires_at: datetime,
    ) -> events.SeatsReserved | events.ReservationFailed:
        """The best `quantity` seats together (domain/allocation.py), held like seats picked by hand."""
        def refused(code: str, reason: str) -> events.ReservationFailed:
            return events.ReservationFailed(request_id=request_id, event_id=self.event_id, user_id=user_id,
                                            seat_ids=[], code=code, reason=reason)

        if self.cancelled:
            return self._called_off(request_id, user_id, [])
        if self.seating is None:
            raise errors.InvalidTransition(f"best available needs the seating of event {self.event_id}")
        if quantity < 1 or (self.per_booking_limit is not None and quantity > self.per_booking_limit):
            most = f"1 to {self.per_booking_limit}" if self.per_booking_limit is not None else "at least 1"
            return refused(errors.InvalidRequest.code, f"A booking needs {most} seats")
        owned = self.seats_per_user.get(user_id, 0)
        if self.per_user_limit is not None and owned + quantity > self.per_user_limit:
            return refused(errors.SeatLimitReached.code,
                           seat_limit_reason(self.per_user_limit, owned))
        choice = self.seating.choose(quantity, category_id, section)
        if isinstance(choice, Refusal):
            return refused(choice.code, choice.reason)
        for seat_id in choice.seat_ids:
            if seat_id not in self.seats:
                self.seats[seat_id] = Seat(seat_id, SeatStatus.AVAILABLE, self.seating.seat[seat_id].price)
        return self.hold(request_id, user_id, list(choice.seat_ids), booking_id, expires_at)

    def hold(
        self, request_id: str, user_id: str, seat_ids: list[str], booking_id: str, expires_at: datetime
    ) -> events.SeatsReserved | events.ReservationFailed:
        """All requested seats or none. Decisions made one after another see each other's holds."""
        if self.cancelled:
            return self._called_off(request_id, user_id, list(seat_ids))
        too_many = self.per_booking_limit is not None and len(seat_ids) > self.per_booking_limit
        if not seat_ids or len(set(seat_ids)) != len(seat_ids) or too_many:
            most = f"1 to {self.per_booking_limit}" if self.per_booking_limit is not None else "at least 1"
            return events.ReservationFailed(
                request_id=request_id, event_id=self.event_id, user_id=user_id, seat_ids=list(seat_ids),
                code=errors.InvalidRequest.code, reason=f"A booking needs {most} different seats",
            )
        missing = [s for s in seat_ids if s not in self.seats]
        if missing:
            subject = f"Seat {missing[0]} does not" if len(missing) == 1 else f"Seats {', '.join(missing)} do not"
            return events.ReservationFailed(
                request_id=request_id, event_id=self.event_id, user_id=user_id, seat_ids=missing,
                code=errors.SeatNotFound.code, reason=f"{subject} exist for event {self.event_id}",
            )
        taken = [self.seats[s] for s in seat_ids if self.seats[s].status is not SeatStatus.AVAILABLE]
        if taken:
            return events.ReservationFailed(
                request_id=request_id, event_id=self.event_id, user_id=user_id,
                seat_ids=[s.seat_id for s in taken], code=errors.SeatUnavailable.code,
                reason=unavailable_message(taken),
            )
        owned = self.seats_per_user.get(user_id, 0)
        if self.per_user_limit is not None and owned + len(seat_ids) > self.per_user_limit:
            return events.ReservationFailed(
                request_id=request_id, event_id=self.event_id, user_id=user_id, seat_ids=list(seat_ids),
                code=errors.SeatLimitReached.code,
                reason=seat_limit_reason(self.per_user_limit, owned),
            )
        for seat_id in seat_ids:
            self.seats[seat_id].reserve(booking_id)
        if self.seating is not None:
            self.seating.take(seat_ids)
        self.seats_per_user[user_id] = owned + len(seat_ids)
        amount = sum((self.seats[s].price for s in seat_ids), Decimal("0.00"))
        return events.SeatsReserved(
            request_id=request_id, event_id=self.event_id, user_id=user_id, booking_id=booking_id,
            seat_ids=list(seat_ids), amount=amount, currency=self.currency, expires_at=expires_at,
        )


# Where a payment leaves its booking: a confirmation repeating that payment gets the answer the payment got
# (CONTRACT §3). A refund ends that: the booking is refused like any that is no longer pending.
PAYMENT_ANSWERS = frozenset({BookingStatus.PAYING, BookingStatus.CONFIRMED, BookingStatus.PAYMENT_FAILED})

_ENDED_ERRORS: dict[BookingStatus, type[errors.BookingNotPending]] = {
    BookingStatus.EXPIRED: errors.BookingExpired,
    BookingStatus.CANCELLED: errors.BookingCancelled,
    BookingStatus.CONFIRMED: errors.BookingAlreadyConfirmed,
    BookingStatus.PAYMENT_FAILED: errors.BookingPaymentFailed,
    BookingStatus.PAYING: errors.PaymentInProgress,
    BookingStatus.REFUNDING: errors.RefundInProgress,
    BookingStatus.REFUNDED: errors.BookingRefunded,
}


@dataclass
class Booking:
    booking_id: str
    event_id: str
    user_id: str
    seat_ids: list[str]
    amount: Decimal
    currency: str
    status: BookingStatus
    expires_at: datetime
    payment_id: str | None = None
    email: str = ""
    refund_id: str | None = None
    events: list[events.Event] = field(default_factory=list, compare=False, repr=False)

    def _require(self, *allowed: BookingStatus) -> None:
        if self.status in allowed:
            return
        error = _ENDED_ERRORS.get(self.status, errors.BookingNotPending)
        raise error(f"Booking {self.booking_id} is {self.status.value}", booking_id=self.booking_id)

    def repeats_payment(self, payment_id: str) -> bool:
        """Whether a confirmation with `payment_id` is this booking's payment asked for again, which the
        payment's own outcome answers (in flight, confirmed or declined; not once refunded)."""
        return self.payment_id == payment_id and self.status in PAYMENT_ANSWERS

    def start_payment(self, payment_id: str, amount: Decimal, now: datetime, asked_at: datetime | None = None) -> None:
        """`asked_at`: when the buyer asked to pay. A payment asked for in time is taken while the hold is still
        there, also when it reaches the booking service after the deadline (a queue or an outage held it up)."""
        judged_at = min(asked_at, now) if asked_at is not None else now
        if self.status is BookingStatus.PENDING and judged_at >= self.expires_at:
            raise errors.BookingExpired(f"Booking {self.booking_id} has expired", booking_id=self.booking_id)
        self._require(BookingStatus.PENDING)
        if amount != self.amount:
            raise errors.AmountMismatch(
                f"Amount {amount} does not match the booking's price {self.amount}",
                expected=str(self.amount),
            )
        self.status, self.payment_id = BookingStatus.PAYING, payment_id
        self.events.append(events.PaymentRequested(self.booking_id, self.event_id, payment_id, amount, self.currency))

    def confirm(self) -> None:
        self._require(BookingStatus.PAYING)
        self.status = BookingStatus.CONFIRMED
        self.events.append(events.BookingConfirmed(self.booking_id, self.event_id, self.user_id, list(self.seat_ids),
                                                   self.amount, self.currency, self.payment_id or ""))

    def fail_payment(self) -> None:
        self._require(BookingStatus.PAYING)
        self._end(BookingStatus.PAYMENT_FAILED, "payment_failed")

    def cancel(self) -> None:
        self._require(BookingStatus.PENDING)
        self._end(BookingStatus.CANCELLED, "cancelled")

    def start_refund(self, refund_id: str, seats_let_in: Collection[str] = ()) -> None:
        """A paid booking given back: the provider is asked to refund it, once, under `refund_id`. Not once a
        ticket of it let someone in at the door (`seats_let_in`): the seat was used, and would be sold again."""
        self._require(BookingStatus.CONFIRMED)
        if seats_let_in:
            used = ", ".join(sorted(seats_let_in))
            raise errors.TicketsUsed(f"Booking {self.booking_id} cannot be refunded: the ticket of seat {used} "
                                     "was used at the door", booking_id=self.booking_id)
        self.status, self.refund_id = BookingStatus.REFUNDING, refund_id
        self.events.append(events.RefundRequested(self.booking_id, self.event_id, self.payment_id or "", refund_id,
                                                  self.amount, self.currency))

    def refunded(self) -> None:
        """The money went back: the tickets are void and their seats AVAILABLE again."""
        self._require(BookingStatus.REFUNDING)
        self._end(BookingStatus.REFUNDED, "refunded")

    def refund_failed(self, reason: str) -> None:
        """The provider would not refund: the booking stays confirmed, its tickets valid."""
        self._require(BookingStatus.REFUNDING)
        self.status = BookingStatus.CONFIRMED
        self.events.append(events.RefundFailed(self.booking_id, self.event_id, self.refund_id or "", reason))

    def call_off(self) -> None:
        """The organiser cancelled the event: a hold not yet paid ends, its seats released."""
        self._require(BookingStatus.PENDING)
        self._end(BookingStatus.CANCELLED, "event_cancelled")

    def expire(self, now: datetime) -> None:
        """A hold that ran out. A payment in flight is let finish: it decides the outcome."""
        self._require(BookingStatus.PENDING)
        if now < self.expires_at:
            raise errors.InvalidTransition(f"Booking {self.booking_id} has not expired yet")
        self._end(BookingStatus.EXPIRED, "timeout")

    def _end(self, status: BookingStatus, reason: str) -> None:
        self.status = status
        self.events.append(events.SeatsReleased(self.booking_id, self.event_id, self.user_id,
                                                list(self.seat_ids), reason))
