"""What the notification service's handler needs from its database: the booking an email is about, event details,
and the emails sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class SeatLabel:
    seat_id: str
    section: str = ""
    row: str = ""
    number: int | None = None

    def describe(self) -> str:
        if self.number is None:
            return f"Seat {self.seat_id}"
        return f"{self.section}, row {self.row}, seat {self.number} ({self.seat_id})"


@dataclass(frozen=True)
class EventInfo:
    event_id: str
    name: str
    venue: str
    starts_at: datetime | None
    seats: tuple[SeatLabel, ...]

    @property
    def when(self) -> str:
        if self.starts_at is None:
            return "date to be announced"
        return self.starts_at.astimezone(UTC).strftime("%A %-d %B %Y, %H:%M UTC")


@dataclass(frozen=True)
class StoredBooking:
    """A booking as PostgreSQL has it: what its emails say and whom they go to."""

    booking_id: str
    event_id: str
    user_id: str
    email: str
    status: str
    seat_ids: tuple[str, ...]
    amount: Decimal
    currency: str
    expires_at: datetime
    payment_id: str | None = None
    end_reason: str | None = None  # why its seats were released, once they were
    event_cancelled: bool = False  # its event called off by the organiser


class NotificationRecords(Protocol):
    async def booking(self, booking_id: str) -> StoredBooking | None:
        """The booking as it stands now; None when there is no such booking."""
        ...

    async def event_info(self, event_id: str, seat_ids: list[str]) -> EventInfo:
        """Name, venue, date and each seat's place; what the catalog does not know is shown by its id."""
        ...

    # booking_id: the booking an email is about, or the email's own id when it is about no booking (the link
    # that confirms an address).
    async def was_sent(self, booking_id: str, kind: str) -> bool: ...

    async def record_sent(self, booking_id: str, kind: str, recipient: str, message_id: str) -> None: ...
