"""What happened, recorded by the domain and published by the adapters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class SeatsReserved(Event):
    request_id: str
    event_id: str
    user_id: str
    booking_id: str
    seat_ids: list[str]
    amount: Decimal
    currency: str
    expires_at: datetime


@dataclass(frozen=True)
class ReservationFailed(Event):
    request_id: str
    event_id: str
    user_id: str
    seat_ids: list[str]
    code: str
    reason: str


@dataclass(frozen=True)
class PaymentRequested(Event):
    booking_id: str
    event_id: str
    payment_id: str
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class BookingConfirmed(Event):
    booking_id: str
    event_id: str
    user_id: str
    seat_ids: list[str]
    amount: Decimal
    currency: str
    payment_id: str


@dataclass(frozen=True)
class SeatsReleased(Event):
    booking_id: str
    event_id: str
    user_id: str
    seat_ids: list[str]
    reason: str


@dataclass(frozen=True)
class RefundRequested(Event):
    booking_id: str
    event_id: str
    payment_id: str
    refund_id: str
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class RefundFailed(Event):
    """The provider would not refund: the booking stays confirmed."""

    booking_id: str
    event_id: str
    refund_id: str
    reason: str


@dataclass(frozen=True)
class CommandRejected(Event):
    """A buyer's confirm or cancel that the booking's state refused (code: a domain error's code)."""

    booking_id: str
    event_id: str
    command: str
    code: str
    reason: str
