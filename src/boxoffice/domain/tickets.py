"""Tickets at the door: the signed QR payload, and whether a booking's ticket lets its holder in.

The payload names what a door scanner needs and a MAC over it with the install's key, so that nobody can
make one from public data (an event id, a seat id, a booking id seen somewhere):

    boxoffice:ticket:2:<eventId>:<bookingId>:<seatId>:<HMAC-SHA256, base64url without padding>

None of the three ids can hold a colon (the API's patterns refuse it), so the fields split unambiguously.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

PREFIX = "boxoffice:ticket:2:"
# The form before tickets were signed: recognised only to say why it is refused.
_UNSIGNED = re.compile(r"boxoffice:ticket:[0-9a-fA-F-]{36}:[^:]+")
_SIGNED = re.compile(
    r"boxoffice:ticket:2:(?P<event>[A-Za-z0-9][A-Za-z0-9_-]{0,63}):"
    r"(?P<booking>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):"
    r"(?P<seat>[A-Za-z0-9][A-Za-z0-9_-]{0,63}):(?P<mac>[A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class Ticket:
    """One seat of one booking: what a QR code stands for."""

    event_id: str
    booking_id: str
    seat_id: str

    @property
    def text(self) -> str:
        return f"{PREFIX}{self.event_id}:{self.booking_id}:{self.seat_id}"


class UnreadableTicket(Exception):
    """A payload that is not a ticket this install issued. `reason` is a machine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class TicketSeal:
    """Signs and checks tickets with the install's key (HMAC-SHA256)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a ticket key needs at least 32 bytes")
        self._key = key

    def _mac(self, text: str) -> str:
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, ticket: Ticket) -> str:
        return f"{ticket.text}:{self._mac(ticket.text)}"

    def read(self, payload: str) -> Ticket:
        """The ticket a payload stands for; UnreadableTicket if it is not one this install signed."""
        payload = payload.strip()
        found = _SIGNED.fullmatch(payload)
        if found is None:
            if _UNSIGNED.fullmatch(payload):
                raise UnreadableTicket("unsigned", "An unsigned ticket of the old form; it cannot be trusted")
            raise UnreadableTicket("malformed", "Not a boxoffice ticket")
        ticket = Ticket(found["event"], found["booking"], found["seat"])
        if not hmac.compare_digest(found["mac"], self._mac(ticket.text)):
            raise UnreadableTicket("forged", "The ticket's signature does not match: it was not issued here")
        return ticket


@dataclass(frozen=True)
class BookingAtDoor:
    """What the door needs to know of the booking a ticket names."""

    event_id: str
    status: str
    seat_ids: frozenset[str]
    event_cancelled: bool = False


def refusal(ticket: Ticket, booking: BookingAtDoor | None) -> tuple[str, str] | None:
    """Why a genuine ticket does not let its holder in (reason code, sentence), or None when it does.
    Only a CONFIRMED booking's seats of an event that is still on get in: a refunded, cancelled, expired or
    unpaid one's do not, nor any of a cancelled event."""
    if booking is None or booking.event_id != ticket.event_id:
        return "unknown_booking", f"No booking {ticket.booking_id} for event {ticket.event_id}"
    if ticket.seat_id not in booking.seat_ids:
        return "seat_not_in_booking", f"Seat {ticket.seat_id} is not part of booking {ticket.booking_id}"
    if booking.status != "confirmed":
        return f"booking_{booking.status}", f"Booking {ticket.booking_id} is {booking.status}, not confirmed"
    if booking.event_cancelled:
        # Also a booking whose refund the provider refused: there is no show to let anyone into.
        return "event_cancelled", f"Event {ticket.event_id} was cancelled by its organiser"
    return None


@dataclass(frozen=True)
class Verdict:
    """The door's answer: `valid` (first entry, recorded now), `already_used` or `invalid`."""

    status: str
    ticket: Ticket | None = None
    used_at: datetime | None = None
    reason: str | None = None
    message: str | None = None
