"""What the waitingroom service's handlers need from its database: one unit of work and its repositories."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from boxoffice.domain.waiting_room import WaitingRoom
from boxoffice.service_layer.unit_of_work import UnitOfWork


class PlaceTaken(Exception):
    """A visitor or a position given twice in one room: the transaction is rolled back."""


@dataclass(frozen=True)
class Place:
    """A visitor in a room: their token, their join in Kafka order and the position given (None: pre-queue)."""

    visitor_id: str
    queue_token: str
    join_seq: int
    position: int | None


class Rooms(Protocol):
    async def lock(self, event_ids: list[str]) -> dict[str, WaitingRoom]:
        """The rooms of these events that exist, locked until the transaction ends (in sorted order)."""
        ...

    async def create(self, room: WaitingRoom) -> None: ...

    async def save(self, rooms: list[WaitingRoom]) -> None: ...

    async def needing_work(self, now: datetime) -> list[str]:
        """Rooms that are due to open, or that have visitors with a place not yet admitted (unlocked)."""
        ...

    async def seats_held(self, event_id: str) -> bool:
        """Whether buyers hold or own seats of the event now; no hold of it is decided until the unit of work
        ends (the holds decided after it see what it wrote)."""
        ...

    async def called_off(self, event_ids: list[str]) -> set[str]:
        """Those of the events their organiser called off; the others cannot be called off until the unit of
        work ends (a cancel waits for the joins placed under it)."""
        ...


class Visitors(Protocol):
    async def find(self, event_id: str, visitor_ids: list[str]) -> dict[str, Place]: ...

    async def add(self, event_id: str, places: list[Place]) -> None:
        """Raises PlaceTaken for a visitor already in the room or a position already given."""
        ...

    async def pre_queue(self, event_id: str) -> list[int]:
        """The join_seq of every visitor without a position yet."""
        ...

    async def place(self, event_id: str, positions: dict[int, int]) -> None:
        """Gives each join_seq its position; PlaceTaken for a position already given."""
        ...

    async def finish(self, event_id: str, visitor_ids: list[str], at: datetime) -> None:
        """Records that these visitors have finished (the first time only)."""
        ...


class Admissions(Protocol):
    async def add(self, event_id: str, first: int, last: int, at: datetime) -> None: ...

    async def admitted_since(self, event_id: str, since: datetime) -> int:
        """How many positions were admitted after `since`."""
        ...

    async def active(self, event_id: str, since: datetime) -> int:
        """How many positions admitted after `since` belong to visitors who have not finished."""
        ...


class WaitingRoomUnitOfWork(UnitOfWork, Protocol):
    @property
    def rooms(self) -> Rooms: ...

    @property
    def visitors(self) -> Visitors: ...

    @property
    def admissions(self) -> Admissions: ...


class UnreadJoins(Protocol):
    async def none_unread(self) -> bool:
        """True once every join in Kafka has been placed; False while some wait unread, or when that cannot be
        told (Kafka away)."""
        ...
