"""Events and their seat maps, as organisers describe them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from boxoffice.domain.waiting_room import OnSale

# An event's own hold time (POST /events `holdSeconds`): from a quick demo's to a day's.
MIN_HOLD_SECONDS, MAX_HOLD_SECONDS = 10, 86_400


@dataclass(frozen=True)
class PriceCategory:
    category_id: str
    name: str
    price: Decimal


@dataclass(frozen=True)
class SeatRow:
    label: str
    section: str
    category_id: str
    seats: int


@dataclass(frozen=True)
class SeatSpec:
    seat_id: str
    section: str
    row: str
    number: int
    category_id: str
    price: Decimal
    position: int
    rank: int = 0  # 0 for the best seat: the map's order unless the organiser gave a best order


@dataclass(frozen=True)
class EventSpec:
    event_id: str
    name: str
    venue_name: str
    venue_city: str
    starts_at: datetime
    currency: str
    categories: tuple[PriceCategory, ...]
    rows: tuple[SeatRow, ...]
    # Seats named one by one (row, number, section, category), when the venue is not rows × seats.
    listed_seats: tuple[tuple[str, str, int, str, str], ...] = ()
    # Seat ids or row labels, best first; the seats not named follow in the map's order.
    best_order: tuple[str, ...] = ()
    # When the sale opens and whether a waiting room stands in front of it (CONTRACT §8.1).
    on_sale: OnSale | None = None
    # The account that created it (with accounts on): it alone of the organisers manages the event. None for an
    # event created without an account (the open demo, `boxoffice up`'s demo events, events from before).
    organiser_id: str | None = None
    # How long a hold of its seats lasts, in seconds (10 to 86,400); None: the platform's BOXOFFICE_HOLD_SECONDS.
    hold_seconds: int | None = None

    def seats(self) -> list[SeatSpec]:
        prices = {c.category_id: c.price for c in self.categories}
        if self.listed_seats:
            seats = [SeatSpec(seat_id, section, row, number, category, prices[category], i, i)
                     for i, (seat_id, row, number, section, category) in enumerate(self.listed_seats)]
        else:
            seats = []
            for row in self.rows:
                for number in range(1, row.seats + 1):
                    seats.append(SeatSpec(f"{row.label}{number}", row.section, row.label, number, row.category_id,
                                          prices[row.category_id], len(seats), len(seats)))
        if not self.best_order:
            return seats
        ranks = best_ranks(seats, self.best_order)
        return [replace(s, rank=ranks[s.seat_id]) for s in seats]

    def unknown_in_best_order(self) -> list[str]:
        seats = self.seats()
        names = {s.seat_id for s in seats} | {s.row for s in seats}
        return [name for name in self.best_order if name not in names]


def best_ranks(seats: list[SeatSpec], best_order: tuple[str, ...]) -> dict[str, int]:
    """Each seat's rank: the seats named in `best_order` (a seat id, or a row label for its seats in order)
    first, then the others in the map's order."""
    by_id = {s.seat_id: s for s in seats}
    by_row: dict[str, list[SeatSpec]] = {}
    for seat in seats:
        by_row.setdefault(seat.row, []).append(seat)
    ranks: dict[str, int] = {}
    for name in best_order:
        for seat in [by_id[name]] if name in by_id else by_row.get(name, []):
            ranks.setdefault(seat.seat_id, len(ranks))
    for seat in seats:
        ranks.setdefault(seat.seat_id, len(ranks))
    return ranks


def row_labels(count: int) -> list[str]:
    """A, B, ... Z, AA, AB, ... as venues label rows."""
    labels = []
    for i in range(count):
        label, n = "", i
        while True:
            label = chr(ord("A") + n % 26) + label
            n = n // 26 - 1
            if n < 0:
                break
        labels.append(label)
    return labels
