"""What the booking service's handlers need from its database: one unit of work and its repositories.

The PostgreSQL adapter (adapters/booking_uow.py) keeps the guards that make a double sale impossible even
if a handler were wrong: seats are locked in one sorted statement, a hold only takes seats still AVAILABLE,
and a partial unique index allows one live booking per seat. When a guard refuses a write it raises one of
the errors below, and the transaction is rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from boxoffice.domain import events
from boxoffice.domain.allocation import PlacedSeat
from boxoffice.domain.model import Booking, SeatMap
from boxoffice.service_layer.unit_of_work import UnitOfWork


class ConcurrentHoldDetected(Exception):
    """A seat changed under a batch even though it was locked: the batch is rolled back and retried."""


class SeatsOutOfStep(Exception):
    """A booking's seats are not in the state the booking says: its writes are rolled back."""


@dataclass(frozen=True)
class StoredOutcome:
    """What a reservation request was answered, kept so that a redelivery or a retry gets the same answer."""

    request_id: str
    event_id: str
    body_hash: str
    topic: str
    payload: bytes


class SeatRepository(Protocol):
    async def lock(self, event_ids: list[str], seats: list[tuple[str, str]]) -> dict[str, SeatMap]:
        """The seat maps of the events that exist, holding the asked (event, seat) pairs, locked in that
        (sorted) order until the unit of work ends."""
        ...

    async def hold(self, holds: list[events.SeatsReserved]) -> None:
        """Seats RESERVED for their new bookings; ConcurrentHoldDetected if any was no longer AVAILABLE."""
        ...

    async def change_numbers(self, event_ids: list[str]) -> dict[str, int]:
        """The last change number of each event that exists."""
        ...

    async def layout(self, event_id: str) -> list[PlacedSeat]:
        """Every seat of the event with its place and rank (0 for the best)."""
        ...

    async def free_seats(self, event_id: str) -> tuple[int, set[str]]:
        """The event's last change number and its AVAILABLE seats, read together."""
        ...


class BookingRepository(Protocol):
    async def add(self, holds: list[events.SeatsReserved], emails: dict[str, str]) -> None:
        """Pending bookings for new holds (emails by request id), each seat live in its booking."""
        ...

    async def seats_per_buyer(self, buyers: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Seats each (event, user) holds or owns in live bookings."""
        ...

    async def lock(self, booking_ids: list[str]) -> list[Booking]:
        """The bookings that exist, locked in id order until the unit of work ends."""
        ...

    async def save(self, bookings: list[Booking]) -> None:
        """Writes what each booking recorded in `events`: a payment started, seats BOOKED, seats AVAILABLE
        again. SeatsOutOfStep if a booking's seats are not RESERVED for it."""
        ...


class RequestOutcomeRepository(Protocol):
    async def find(self, request_ids: list[str]) -> dict[str, StoredOutcome]: ...

    async def add(self, outcomes: list[StoredOutcome]) -> None: ...


class ChangeSequence(Protocol):
    async def advance(self, counts: dict[str, int]) -> dict[str, int]:
        """Moves each event's change number on by its count; returns each event's new last number."""
        ...


class WaitingRooms(Protocol):
    async def active(self, event_ids: list[str]) -> set[str]:
        """Those of the events whose sale is behind an active waiting room."""
        ...


class BookingUnitOfWork(UnitOfWork, Protocol):
    @property
    def seats(self) -> SeatRepository: ...

    @property
    def bookings(self) -> BookingRepository: ...

    @property
    def requests(self) -> RequestOutcomeRepository: ...

    @property
    def sequence(self) -> ChangeSequence: ...

    @property
    def waiting_rooms(self) -> WaitingRooms: ...
