"""What checking tickets at the door needs from the database: one unit of work over bookings and entries."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, Self

from boxoffice.domain.tickets import BookingAtDoor, Ticket


class DoorBookings(Protocol):
    async def get(self, booking_id: str) -> BookingAtDoor | None:
        """The booking, held unchanged until the transaction ends (a refund decided meanwhile waits)."""
        ...


class Entries(Protocol):
    async def enter(self, ticket: Ticket, at: datetime) -> datetime | None:
        """Records the ticket's entry at `at`: None if it is the first, else the time of the earlier one
        (which stays as it was)."""
        ...


class DoorUnitOfWork(Protocol):
    """`async with uow:` begins the transaction; leaving it without `commit()` rolls back."""

    @property
    def bookings(self) -> DoorBookings: ...

    @property
    def entries(self) -> Entries: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None: ...
