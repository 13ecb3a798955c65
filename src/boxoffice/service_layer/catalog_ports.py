"""What the catalog service's handlers need from its database: one unit of work and its repositories.

The catalog publishes nothing, so its unit of work has no outbox: a transaction and three repositories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self

from boxoffice.domain.catalog import EventSpec


@dataclass(frozen=True)
class SeatCounts:
    """A change to an event's (available, reserved, booked) seat counts."""

    available: int = 0
    reserved: int = 0
    booked: int = 0

    def __add__(self, other: SeatCounts) -> SeatCounts:
        return SeatCounts(self.available + other.available, self.reserved + other.reserved,
                          self.booked + other.booked)

    def times(self, seats: int) -> SeatCounts:
        return SeatCounts(self.available * seats, self.reserved * seats, self.booked * seats)


class EventRepository(Protocol):
    async def create(self, spec: EventSpec) -> bool:
        """The event with its price categories, seats and counts (every seat available), unless an event
        with its id exists already, which is left as it is. Returns whether it was created."""
        ...


class ProcessedMessages(Protocol):
    async def first_seen(self, consumer: str, message_ids: list[str]) -> set[str]:
        """Records the messages as processed by the consumer; returns the ids it had not processed before."""
        ...


class AvailabilityCounts(Protocol):
    async def add(self, changes: dict[str, SeatCounts]) -> None:
        """Moves each event's counts by its change; an event the catalog does not have is skipped."""
        ...


class CatalogUnitOfWork(Protocol):
    """`async with uow:` begins the transaction; leaving it without `commit()` rolls back."""

    @property
    def events(self) -> EventRepository: ...

    @property
    def processed(self) -> ProcessedMessages: ...

    @property
    def availability(self) -> AvailabilityCounts: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...
