"""What best-available requests choose from: each event's seating, kept between batches.

Choosing needs every seat of an event and which are free; reading them for every batch would cost a query
over the whole event. The booking service that owns an event's partition makes all its seat changes, so it
keeps the seating and moves it along with its own holds. The event's change number says when the seating
is behind (a release decided in another transaction, or another process that held the partition): it is
read again. A run that does not commit leaves the seatings it touched to be read again; the database's
guards still refuse a seat a stale seating offered, and the run is then decided afresh.
"""

from __future__ import annotations

from boxoffice.domain.allocation import Seating, most_together
from boxoffice.service_layer.booking_ports import SeatRepository


class Seatings:
    def __init__(self) -> None:
        self._known: dict[str, Seating] = {}
        self._touched: set[str] = set()
        self._numbered: dict[str, tuple[int, int]] = {}  # event → (first, last) change number this run took
        self.reads = 0  # how many times an event's free seats were read (tests and the bench look)
        self._most_together: dict[str, int] = {}  # an event's layout never changes: read once

    def known(self, event_ids: set[str]) -> set[str]:
        return {e for e in event_ids if e in self._known}

    async def current(self, seats: SeatRepository, event_ids: list[str]) -> dict[str, Seating]:
        """The seatings of the events that exist, as the database has them now."""
        numbers = await seats.change_numbers(event_ids)
        current: dict[str, Seating] = {}
        for event_id, number in numbers.items():
            seating = self._known.get(event_id)
            if seating is None or seating.seq != number:
                seq, free = await seats.free_seats(event_id)
                self.reads += 1
                if seating is None:
                    seating = Seating(await seats.layout(event_id), free, seq)
                else:
                    seating.reset(free, seq)
            self._known[event_id] = current[event_id] = seating
            self._touched.add(event_id)
        return current

    async def most_together(self, seats: SeatRepository, event_id: str) -> int:
        """The most seats next to each other in one row of the event, free or not: from its kept seating, or
        its layout read once (a seat map does not change once the event exists)."""
        most = self._most_together.get(event_id)
        if most is None:
            known = self._known.get(event_id)
            most = most_together(known.seat.values() if known is not None else await seats.layout(event_id))
            self._most_together[event_id] = most
        return most

    def numbered(self, event_id: str, first: int, last: int) -> None:
        """This run's seat changes of the event took change numbers first..last."""
        self._numbered[event_id] = (first, last)

    def committed(self) -> None:
        """The run's changes are in the database: a seating whose numbers follow on from its own moves on;
        one that something else changed meanwhile is read again next time."""
        for event_id in self._touched:
            seating = self._known.get(event_id)
            numbers = self._numbered.get(event_id)
            if seating is not None and numbers is not None:
                first, last = numbers
                if seating.seq == first - 1:
                    seating.seq = last
                else:
                    del self._known[event_id]
        self._touched.clear()
        self._numbered.clear()

    def abandoned(self) -> None:
        """The run rolled back: the seatings it moved no longer match the database."""
        for event_id in self._touched:
            self._known.pop(event_id, None)
        self._touched.clear()
        self._numbered.clear()
