"""Best available: the best free seats next to each other in one row (CONTRACT §8.2).

Each seat has a rank, 0 for the event's best seat (the seat map's order, or the organiser's `bestOrder`).
Seats are next to each other when they are in one row (section and row label) and their numbers follow.
In each row, the block of `quantity` free seats together that leaves no single free seat stranded between taken
ones if any block of the row can, then the block of the lowest total rank; of the rows' blocks, the one of the
lowest total rank, the row with the better best seat on a tie. All or nothing: a request gets its whole block or
a reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from boxoffice.domain import errors


@dataclass(frozen=True)
class PlacedSeat:
    seat_id: str
    section: str
    row: str
    number: int
    category_id: str
    price: Decimal
    rank: int


@dataclass(frozen=True)
class Refusal:
    """Why no block could be chosen: a domain error's code and a sentence for the buyer."""

    code: str
    reason: str


@dataclass(frozen=True)
class Block:
    seat_ids: tuple[str, ...]
    stranded: int  # single free seats it leaves between taken ones in its row
    score: int  # the sum of its seats' ranks: lower is better


Filter = tuple[str | None, str | None]  # (category id, section); None: any


class _Row:
    def __init__(self, seats: list[PlacedSeat]) -> None:
        self.seats = sorted(seats, key=lambda s: s.number)
        self.ids = [s.seat_id for s in self.seats]
        # together[i]: seat i and seat i + 1 are next to each other (no gap in the numbering)
        self.together = [b.number == a.number + 1 for a, b in zip(self.seats, self.seats[1:], strict=False)]
        self.free = 0
        self.version = 0  # moves with every seat taken or given back: the blocks found before are stale

    def adjacent(self, i: int) -> bool:
        """Whether seat i and seat i + 1 are next to each other (no gap in the numbering)."""
        return self.seats[i + 1].number == self.seats[i].number + 1


class Seating:
    """An event's seats by row and which of them are free, as the booking service knows them. `seq` is the
    event's change number the free seats stand at (the service reloads them when the database's differs)."""

    def __init__(self, seats: Iterable[PlacedSeat], free: Iterable[str] = (), seq: int = 0) -> None:
        by_row: dict[tuple[str, str], list[PlacedSeat]] = {}
        for seat in seats:
            by_row.setdefault((seat.section, seat.row), []).append(seat)
        self._rows = [_Row(row) for row in by_row.values()]
        self._row_of: dict[str, _Row] = {}
        self.seat: dict[str, PlacedSeat] = {}
        for row in self._rows:
            for placed in row.seats:
                self._row_of[placed.seat_id], self.seat[placed.seat_id] = row, placed
        self._sections = {s.section for s in self.seat.values()}
        self._categories = {s.category_id for s in self.seat.values()}
        self._ranked: dict[Filter, list[_Row]] = {}
        self._row_bests: dict[Filter, list[int]] = {}
        # Each row's best block per request shape, while the row stays as it was: a bestOrder that mixes rows makes
        # every choice weigh many rows, and a row's block is found again only after the row changed.
        self._blocks: dict[tuple[Filter, int], dict[int, tuple[int, Block | None]]] = {}
        self._first_with_room: dict[Filter, int] = {}
        self.free: set[str] = set()
        self.reset(free, seq)

    def reset(self, free: Iterable[str], seq: int) -> None:
        self._first_with_room.clear()
        self.free = {s for s in free if s in self.seat}
        for row in self._rows:
            row.free = sum(1 for s in row.seats if s.seat_id in self.free)
            row.version += 1
        self.seq = seq

    def take(self, seat_ids: Iterable[str]) -> None:
        for seat_id in seat_ids:
            if seat_id in self.free:
                self.free.remove(seat_id)
                self._row_of[seat_id].free -= 1
                self._row_of[seat_id].version += 1

    def give_back(self, seat_ids: Iterable[str]) -> None:
        for seat_id in seat_ids:
            if seat_id in self.seat and seat_id not in self.free:
                self.free.add(seat_id)
                self._row_of[seat_id].free += 1
                self._row_of[seat_id].version += 1
                self._first_with_room.clear()

    def choose(self, quantity: int, category_id: str | None = None, section: str | None = None) -> Block | Refusal:
        """The best block of `quantity` free seats together in one row of the category and section asked."""
        wanted = (category_id, section)
        rows = self._rows_for(wanted)
        if not rows:
            return self._not_found(wanted)
        # Rows in front that are full stay full until a seat is given back: the next choice starts after them.
        first = self._first_with_room.get(wanted, 0)
        while first < len(rows) and rows[first].free == 0:
            first += 1
        self._first_with_room[wanted] = first
        bests = self._row_bests[wanted]
        blocks = self._blocks.setdefault((wanted, quantity), {})
        found: Block | None = None
        for at in range(first, len(rows)):
            # Rows come best seat first: no block of this row or a later one ranks under quantity x its best seat.
            if found is not None and quantity * bests[at] >= found.score:
                break
            row = rows[at]
            if row.free < quantity:
                continue
            known = blocks.get(id(row))
            if known is not None and known[0] == row.version:
                block = known[1]
            else:
                block = self._best_block(row, quantity, wanted)
                blocks[id(row)] = (row.version, block)
            if block is not None and (found is None or block.score < found.score):
                found = block
        if found is not None:
            return found
        left = sum(1 for row in rows for s in row.seats if s.seat_id in self.free and _matches(s, wanted))
        where = _describe(wanted)
        if left < quantity:
            return Refusal(errors.SoldOut.code, f"Sold out: {_count(left)} left{where}, {quantity} asked for")
        return Refusal(errors.NotEnoughAdjacent.code,
                       f"{_count(left)} left{where}, but not {quantity} together in one row")

    def _not_found(self, wanted: Filter) -> Refusal:
        """Why no seat is of the category and section asked: a section the event lacks is named as such; a
        category it lacks, or one it has but not in that section, is the category's."""
        category_id, section = wanted
        if section is not None and section not in self._sections \
                and (category_id is None or category_id in self._categories):
            return Refusal(errors.SectionNotFound.code, f"This event has no section {section}")
        return Refusal(errors.CategoryNotFound.code, f"This event has no seats{_describe(wanted)}")

    def stranded(self) -> list[str]:
        """Free seats whose neighbours on both sides are taken."""
        lonely = []
        for row in self._rows:
            seats = row.seats
            for i in range(1, len(seats) - 1):
                if seats[i].seat_id in self.free and row.adjacent(i - 1) and row.adjacent(i) \
                        and seats[i - 1].seat_id not in self.free and seats[i + 1].seat_id not in self.free:
                    lonely.append(seats[i].seat_id)
        return lonely

    def _rows_for(self, wanted: Filter) -> list[_Row]:
        """The rows with seats of the category and section asked, best seat first (`_row_bests`: that seat's
        rank, free or not)."""
        ranked = self._ranked.get(wanted)
        if ranked is None:
            best = {id(row): min((s.rank for s in row.seats if _matches(s, wanted)), default=None)
                    for row in self._rows}
            ranked = sorted((row for row in self._rows if best[id(row)] is not None),
                            key=lambda row: best[id(row)] or 0)
            self._ranked[wanted] = ranked
            self._row_bests[wanted] = [best[id(row)] or 0 for row in ranked]
        return ranked

    def _best_block(self, row: _Row, quantity: int, wanted: Filter) -> Block | None:
        """The row's best block of `quantity` seats together, free and of the category and section asked: the
        fewest single seats stranded, then the lowest total rank, then the first."""
        seats, ids, together, free = row.seats, row.ids, row.together, self.free
        any_seat = wanted == (None, None)
        best: tuple[int, int, int] | None = None  # (stranded, score, first index)
        start, count = 0, len(seats)
        while start < count:
            if ids[start] not in free or not (any_seat or _matches(seats[start], wanted)):
                start += 1
                continue
            end = start  # the run of usable seats together: start..end
            while end + 1 < count and together[end] and ids[end + 1] in free \
                    and (any_seat or _matches(seats[end + 1], wanted)):
                end += 1
            if end - start + 1 >= quantity:
                # The seats either side of the run: a piece of one seat left next to a taken one is stranded.
                taken_before = start > 0 and together[start - 1] and ids[start - 1] not in free
                taken_after = end + 1 < count and together[end] and ids[end + 1] not in free
                score = sum(s.rank for s in seats[start:start + quantity])
                for first in range(start, end - quantity + 2):
                    if first > start:  # slide the window one seat on
                        score += seats[first + quantity - 1].rank - seats[first - 1].rank
                    last = first + quantity - 1
                    stranded = (first - start == 1 and taken_before) + (end - last == 1 and taken_after)
                    if best is None or (stranded, score, first) < best:
                        best = (stranded, score, first)
            start = end + 1
        if best is None:
            return None
        stranded, score, first = best
        return Block(tuple(ids[first:first + quantity]), stranded, score)


def _matches(seat: PlacedSeat, wanted: Filter) -> bool:
    category_id, section = wanted
    return (category_id is None or seat.category_id == category_id) and (section is None or seat.section == section)


def most_together(seats: Iterable[PlacedSeat]) -> int:
    """The most seats next to each other in one row (section and row label), free or not: no block of more can
    ever be chosen."""
    by_row: dict[tuple[str, str], list[int]] = {}
    for seat in seats:
        by_row.setdefault((seat.section, seat.row), []).append(seat.number)
    most = 0
    for numbers in by_row.values():
        numbers.sort()
        run = 0
        for i, number in enumerate(numbers):
            run = run + 1 if i and number == numbers[i - 1] + 1 else 1
            most = max(most, run)
    return most


def _describe(wanted: Filter) -> str:
    category_id, section = wanted
    parts = ([f"in category {category_id}"] if category_id else []) + ([f"in section {section}"] if section else [])
    return "".join(f" {part}" for part in parts[:1]) + "".join(f" and {part}" for part in parts[1:])


def _count(n: int) -> str:
    return "no seats" if n == 0 else "1 seat" if n == 1 else f"{n} seats"
