"""What the booking service's handlers need from its database: one unit of work and its repositories.

The PostgreSQL adapter (adapters/booking_uow.py) keeps the guards that make a double sale impossible even
if a handler were wrong: seats are locked in one sorted statement, a hold only takes seats still AVAILABLE,
and a partial unique index allows one live booking per seat. When a guard refuses a write it raises one of
the errors below, and the transaction is rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from boxoffice.domain import events
from boxoffice.domain.allocation import PlacedSeat
from boxoffice.domain.model import Booking, SeatMap
from boxoffice.domain.seat_counts import CountsAt, SeatCounts
from boxoffice.domain.waitlist import WaitlistEntry
from boxoffice.service_layer.unit_of_work import Outgoing, UnitOfWork


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

    def outgoing(self) -> Outgoing:
        """The answer as it goes out again (a redelivered request)."""
        return Outgoing(self.topic, self.event_id.encode(), self.payload)


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

    async def placed(self, event_id: str, seat_ids: list[str]) -> list[PlacedSeat]:
        """The asked seats of the event with their place and rank."""
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

    async def live_of_event(self, event_id: str) -> list[Booking]:
        """The event's pending, paying and confirmed bookings, locked in id order."""
        ...

    async def let_in(self, booking_ids: list[str]) -> dict[str, list[str]]:
        """The seats of these bookings whose tickets were checked in at the door, by booking (bookings with none
        left out). The door records an entry under a share lock on its booking: read after `lock`, an entry
        being recorded is waited for."""
        ...

    async def save(self, bookings: list[Booking]) -> None:
        """Writes what each booking (each named once) recorded in `events`: a payment started, seats BOOKED,
        seats AVAILABLE again. SeatsOutOfStep if a booking's seats are not held by it as it says: the writes
        are then to be rolled back, all the bookings' alike."""
        ...


class RequestOutcomeRepository(Protocol):
    async def find(self, request_ids: list[str]) -> dict[str, StoredOutcome]: ...

    async def add(self, outcomes: list[StoredOutcome]) -> None: ...


class WaitlistRepository(Protocol):
    async def find(self, waitlist_id: str) -> WaitlistEntry | None:
        """The entry, locked until the unit of work ends."""
        ...

    async def joined_by(self, request_id: str) -> WaitlistEntry | None:
        """The entry a join request made, if it was decided before."""
        ...

    async def waiting_for(self, event_id: str, user_id: str) -> WaitlistEntry | None:
        """The buyer's entry for the event that is still in line: waiting, or holding an offer not yet paid for;
        locked."""
        ...

    async def add(self, entry: WaitlistEntry, request_id: str) -> WaitlistEntry:
        """Stores a new waiting entry; its position is the event's next (the entry as stored)."""
        ...

    async def waiting(self, event_ids: list[str], most: int) -> dict[str, list[WaitlistEntry]]:
        """Up to `most` waiting entries of each event, first in line first, locked."""
        ...

    async def offered_with(self, booking_ids: list[str]) -> list[WaitlistEntry]:
        """The entries offered these bookings, locked."""
        ...

    async def ahead_of(self, entry: WaitlistEntry) -> int:
        """How many entries of the event wait in front of this one."""
        ...

    async def save(self, entries: list[WaitlistEntry]) -> None:
        """Writes each entry's status and booking."""
        ...


class EventStates(Protocol):
    async def call_off(self, event_id: str) -> bool | None:
        """Marks the event cancelled: True if it was on sale, False if it was cancelled before, None if it does
        not exist."""
        ...

    async def cancelled(self, event_ids: list[str]) -> set[str]:
        """Which of the events were called off."""
        ...

    async def lock_called_off(self, event_id: str) -> bool | None:
        """Whether the event was called off (None: it does not exist), its row locked until the unit of work ends:
        a cancel waits for what is decided under it, or is seen by it."""
        ...


class ChangeSequence(Protocol):
    async def advance(self, changes: dict[str, tuple[int, SeatCounts]]) -> dict[str, CountsAt]:
        """Moves each event's change number on by the number of its changes and its seat counts by how they
        moved; returns each event's new last number with its counts then (events that do not exist: none)."""
        ...


@dataclass(frozen=True)
class SaleGate:
    """How an event's sale opens (its on-sale): behind a waiting room, or at `opens_at` for everyone."""

    waiting_room: bool
    opens_at: datetime


class WaitingRooms(Protocol):
    async def gates(self, event_ids: list[str]) -> dict[str, SaleGate]:
        """Those of the events that have an on-sale, with how their sale opens."""
        ...


class PaymentRecords(Protocol):
    """What the payment service committed before it published each payment or refund outcome. An outcome read
    from Kafka counts only if it matches: the embedded broker takes any local producer's messages, and a
    forged payment.succeeded must not sell seats, nor a forged refund.succeeded end a booking unrefunded."""

    async def payment_statuses(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(booking id, payment id) → "charging", "succeeded" or "failed", for the payments recorded."""
        ...

    async def refund_statuses(self, refund_ids: list[str]) -> dict[str, tuple[str, str]]:
        """refund id → (its booking id, "refunding", "succeeded" or "failed"), for the refunds recorded."""
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
    def waitlist(self) -> WaitlistRepository: ...

    @property
    def events(self) -> EventStates: ...

    @property
    def waiting_rooms(self) -> WaitingRooms: ...

    @property
    def payment_records(self) -> PaymentRecords: ...
