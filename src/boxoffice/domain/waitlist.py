"""The waiting list of a sold-out event: who gets seats that come free, and in which order (CONTRACT §8.3).

Seats released by an expiry, a cancel, a declined payment or a refund go to the waiting list before anyone
else: entries are served in the order they joined, and the first entry whose quantity fits together
(domain/allocation.py) among the event's free seats, those just released and those released before that no
entry could take alone, is offered them. An entry that does not fit keeps its place for the next release.
What is left over after the list is served is free for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from boxoffice.domain.allocation import Block, PlacedSeat, Seating


class WaitlistStatus(StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    EXPIRED = "expired"
    LEFT = "left"


@dataclass
class WaitlistEntry:
    waitlist_id: str
    event_id: str
    user_id: str
    email: str
    quantity: int
    position: int  # the order it joined in, 1 for an event's first entry
    status: WaitlistStatus = WaitlistStatus.WAITING
    booking_id: str | None = None

    def offer(self, booking_id: str) -> None:
        if self.status is not WaitlistStatus.WAITING:
            raise ValueError(f"waiting list entry {self.waitlist_id} is {self.status}, not waiting")
        self.status, self.booking_id = WaitlistStatus.OFFERED, booking_id

    def offer_ended(self, by_the_buyer: bool) -> None:
        """The offer's booking ended unpaid: run out or declined (expired), or cancelled by the buyer (left)."""
        if self.status is WaitlistStatus.OFFERED:
            self.status = WaitlistStatus.LEFT if by_the_buyer else WaitlistStatus.EXPIRED

    def leave(self) -> bool:
        """Whether the entry left now (an entry already offered, expired or left stays as it is)."""
        if self.status is not WaitlistStatus.WAITING:
            return False
        self.status = WaitlistStatus.LEFT
        return True


def offers(free: list[PlacedSeat], entries: list[WaitlistEntry]) -> list[tuple[WaitlistEntry, Block]]:
    """Which waiting entries get which of the free seats: in the entries' order, each the best block of its
    quantity together among the seats still unoffered, skipping entries that do not fit."""
    seating = Seating(free, [s.seat_id for s in free])
    chosen: list[tuple[WaitlistEntry, Block]] = []
    for entry in sorted(entries, key=lambda e: e.position):
        if not seating.free:
            break
        if entry.status is not WaitlistStatus.WAITING or entry.quantity > len(seating.free):
            continue
        block = seating.choose(entry.quantity)
        if isinstance(block, Block):
            seating.take(block.seat_ids)
            chosen.append((entry, block))
    return chosen
