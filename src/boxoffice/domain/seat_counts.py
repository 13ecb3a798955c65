"""An event's seat counts: how many seats are available, reserved and booked, and how a change moves them."""

from __future__ import annotations

from dataclasses import dataclass

from boxoffice.domain.model import SeatStatus


@dataclass(frozen=True)
class SeatCounts:
    """Counts of an event's seats by status, or a change to them."""

    available: int = 0
    reserved: int = 0
    booked: int = 0

    @classmethod
    def moved(cls, seats: int, from_status: SeatStatus, to_status: SeatStatus) -> SeatCounts:
        """The change of `seats` seats going from one status to another."""
        change = {"available": 0, "reserved": 0, "booked": 0}
        change[from_status.value.lower()] -= seats
        change[to_status.value.lower()] += seats
        return cls(**change)

    def __add__(self, other: SeatCounts) -> SeatCounts:
        return SeatCounts(self.available + other.available, self.reserved + other.reserved,
                          self.booked + other.booked)

    def __sub__(self, other: SeatCounts) -> SeatCounts:
        return SeatCounts(self.available - other.available, self.reserved - other.reserved,
                          self.booked - other.booked)

    def times(self, seats: int) -> SeatCounts:
        return SeatCounts(self.available * seats, self.reserved * seats, self.booked * seats)


@dataclass(frozen=True)
class CountsAt:
    """An event's seat counts as they were right after its change numbered `seq`."""

    seq: int
    counts: SeatCounts
