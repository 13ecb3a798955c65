"""Events and their seat maps, as organisers describe them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


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

    def seats(self) -> list[SeatSpec]:
        prices = {c.category_id: c.price for c in self.categories}
        if self.listed_seats:
            return [SeatSpec(seat_id, section, row, number, category, prices[category], i)
                    for i, (seat_id, row, number, section, category) in enumerate(self.listed_seats)]
        out: list[SeatSpec] = []
        for row in self.rows:
            for number in range(1, row.seats + 1):
                out.append(SeatSpec(f"{row.label}{number}", row.section, row.label, number, row.category_id,
                                    prices[row.category_id], len(out)))
        return out


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
