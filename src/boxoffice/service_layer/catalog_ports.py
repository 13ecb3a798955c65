"""What the catalog service's handlers need from its database: one unit of work and its repositories.

The catalog publishes nothing, so its unit of work has no outbox: a transaction and two repositories.
"""

from __future__ import annotations

from typing import Protocol, Self

from boxoffice.domain.catalog import EventSpec
from boxoffice.domain.seat_counts import CountsAt, SeatCounts

__all__ = ["AvailabilityCounts", "CatalogUnitOfWork", "CountsAt", "EventRepository", "SeatCounts"]


class EventRepository(Protocol):
    async def create(self, spec: EventSpec, request_id: str | None = None) -> bool:
        """The event with its price categories, seats and counts (every seat available), unless an event
        with its id exists already, which is left as it is. Returns whether it was created. The request that
        created it is kept with it: the gateway answers 201 to that request and 409 to any other."""
        ...


class AvailabilityCounts(Protocol):
    async def keep_newest(self, latest: dict[str, CountsAt]) -> None:
        """Sets each event's counts to the given ones unless the counts kept are of the same change or a later
        one; an event the catalog does not have is skipped."""
        ...


class CatalogUnitOfWork(Protocol):
    """`async with uow:` begins the transaction; leaving it without `commit()` rolls back."""

    @property
    def events(self) -> EventRepository: ...

    @property
    def availability(self) -> AvailabilityCounts: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...
