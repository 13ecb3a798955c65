"""An in-memory waitingroom unit of work with the PostgreSQL adapter's guards (a position given once)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from boxoffice.domain.waiting_room import WaitingRoom
from boxoffice.service_layer.ports import OutboxRow
from boxoffice.service_layer.unit_of_work import Outgoing
from boxoffice.service_layer.waiting_room_ports import Place, PlaceTaken


@dataclass
class RoomTables:
    rooms: dict[str, WaitingRoom] = field(default_factory=dict)
    visitors: dict[tuple[str, str], Place] = field(default_factory=dict)
    admissions: list[tuple[str, int, int, datetime]] = field(default_factory=list)
    finished: dict[tuple[str, str], datetime] = field(default_factory=dict)
    outbox: list[OutboxRow] = field(default_factory=list)
    cancelled_events: set[str] = field(default_factory=set)
    events_with_holds: set[str] = field(default_factory=set)


class FakeRooms:
    def __init__(self, t: RoomTables) -> None:
        self._t = t

    async def lock(self, event_ids: list[str]) -> dict[str, WaitingRoom]:
        return {e: copy.copy(self._t.rooms[e]) for e in sorted(event_ids) if e in self._t.rooms}

    async def create(self, room: WaitingRoom) -> None:
        self._t.rooms.setdefault(room.event_id, copy.copy(room))

    async def save(self, rooms: list[WaitingRoom]) -> None:
        for room in rooms:
            assert room.serving_position <= room.last_position
            self._t.rooms[room.event_id] = copy.copy(room)

    async def needing_work(self, now: datetime) -> list[str]:
        return sorted(e for e, r in self._t.rooms.items() if r.enabled and (
            (not r.opened and r.opens_at <= now) or (r.opened and r.serving_position < r.last_position)))

    async def seats_held(self, event_id: str) -> bool:
        return event_id in self._t.events_with_holds

    async def called_off(self, event_ids: list[str]) -> set[str]:
        return self._t.cancelled_events & set(event_ids)


class FakeVisitors:
    def __init__(self, t: RoomTables) -> None:
        self._t = t

    async def find(self, event_id: str, visitor_ids: list[str]) -> dict[str, Place]:
        return {v: self._t.visitors[(event_id, v)] for v in visitor_ids if (event_id, v) in self._t.visitors}

    async def add(self, event_id: str, places: list[Place]) -> None:
        seqs = {p.join_seq for (e, _), p in self._t.visitors.items() if e == event_id}
        for place in places:
            if (event_id, place.visitor_id) in self._t.visitors or place.join_seq in seqs:
                raise PlaceTaken(f"{place.visitor_id} placed twice")
            seqs.add(place.join_seq)
            self._t.visitors[(event_id, place.visitor_id)] = place
        self._check_unique(event_id)

    async def pre_queue(self, event_id: str) -> list[int]:
        return sorted(p.join_seq for (e, _), p in self._t.visitors.items() if e == event_id and p.position is None)

    async def place(self, event_id: str, positions: dict[int, int]) -> None:
        for key, p in list(self._t.visitors.items()):
            if key[0] == event_id and p.join_seq in positions:
                self._t.visitors[key] = replace(p, position=positions[p.join_seq])
        self._check_unique(event_id)

    async def finish(self, event_id: str, visitor_ids: list[str], at: datetime) -> None:
        for visitor_id in visitor_ids:
            if (event_id, visitor_id) in self._t.visitors:
                self._t.finished.setdefault((event_id, visitor_id), at)

    def _check_unique(self, event_id: str) -> None:
        given = [p.position for (e, _), p in self._t.visitors.items() if e == event_id and p.position is not None]
        if len(given) != len(set(given)):
            raise PlaceTaken("a position given twice")


class FakeAdmissions:
    def __init__(self, t: RoomTables) -> None:
        self._t = t

    async def add(self, event_id: str, first: int, last: int, at: datetime) -> None:
        self._t.admissions.append((event_id, first, last, at))

    def _recent(self, event_id: str, since: datetime) -> set[int]:
        return {p for e, first, last, at in self._t.admissions if e == event_id and at > since
                for p in range(first, last + 1)}

    async def admitted_since(self, event_id: str, since: datetime) -> int:
        return len(self._recent(event_id, since))

    async def active(self, event_id: str, since: datetime) -> int:
        finished = {self._t.visitors[key].position for key in self._t.finished if key[0] == event_id}
        return len(self._recent(event_id, since) - finished)


class FakeOutbox:
    def __init__(self, t: RoomTables) -> None:
        self._t = t
        self.pending: list[OutboxRow] = []
        self.written: list[OutboxRow] = []

    async def add(self, messages: list[Outgoing]) -> None:
        start = len(self._t.outbox) + len(self.pending)
        self.pending += [OutboxRow(start + i + 1, m.topic, m.key, m.payload) for i, m in enumerate(messages)]


class FakeWaitingRoomUnitOfWork:
    """Every `async with` works on a copy of the tables, kept only on commit."""

    def __init__(self, tables: RoomTables) -> None:
        self.tables = tables
        self.outbox = FakeOutbox(tables)

    async def __aenter__(self) -> FakeWaitingRoomUnitOfWork:
        self._work = copy.deepcopy(self.tables)
        self.rooms, self.visitors = FakeRooms(self._work), FakeVisitors(self._work)
        self.admissions = FakeAdmissions(self._work)
        self.outbox.pending = []
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.outbox.pending = []

    async def commit(self) -> None:
        self._work.outbox += self.outbox.pending
        self.outbox.written += self.outbox.pending
        self.outbox.pending = []
        for name in vars(self.tables):
            setattr(self.tables, name, getattr(self._work, name))

    async def rollback(self) -> None:
        self.outbox.pending = []

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        yield
