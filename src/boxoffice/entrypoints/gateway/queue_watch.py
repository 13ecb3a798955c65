"""The gateway's view of each waiting room, and the visitors watching their place live.

Many watchers, one number: a waiting visitor's status follows from their position and the event's serving
position. Each queue.admitted message makes the gateway read that event's room from PostgreSQL once; every
watcher of it is given their new status from that room, so an admission costs one query per event and one
small message per watcher, not a query per visitor. The message itself only says which positions were
admitted and when, and is believed no further than the database: anyone who can write to the broker can
write one. A watcher's position is read once when they connect (and, for the pre-queue, once for all the
watchers of an event at the opening).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from boxoffice import messages as topics
from boxoffice import views
from boxoffice.adapters.kafka import RestartedLogs, tail_messages
from boxoffice.adapters.queue_tokens import QueueTokens
from boxoffice.adapters.waiting_room_store import rate_of
from boxoffice.domain.waiting_room import Serving, VisitorStatus, visitor_status
from boxoffice.logs import Outage
from boxoffice.messages import Message, iso, utc_now

log = logging.getLogger(__name__)

# A room's figures are read again after this long even without messages (a gateway that missed some).
ROOM_FRESH_SECONDS = 5.0
DATABASE_AWAY = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass
class Room:
    event_id: str
    enabled: bool
    serving: Serving
    read_at: float


@dataclass(eq=False)
class Watcher:
    event_id: str
    queue_token: str
    visitor_id: str
    position: int | None
    admitted_at: datetime | None
    updates: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    last: dict[str, Any] | None = None


def _room_of(record: asyncpg.Record, now: float) -> Room:
    return Room(record["event_id"], record["enabled"],
                Serving(record["serving_position"], rate_of(record["admit_per_minute"]), record["admission_minutes"],
                        record["opens_at"], record["opened_at"] is not None, int(record["last_minute"])), now)


class QueueWatch:
    def __init__(self, pool: asyncpg.Pool, tokens: QueueTokens, consumer: AIOKafkaConsumer | None = None,
                 restarted_logs: RestartedLogs | None = None) -> None:
        self._pool, self.tokens, self._consumer = pool, tokens, consumer
        self._restarted_logs = restarted_logs
        self._rooms: dict[str, Room | None] = {}
        self._read_at: dict[str, float] = {}
        self._reading: dict[str, asyncio.Future[Room | None]] = {}
        self._watchers: dict[str, set[Watcher]] = {}
        self.pushed = 0

    async def room(self, event_id: str) -> Room | None:
        """The event's waiting room (None: it has none), from memory while fresh."""
        if event_id in self._rooms and time.monotonic() - self._read_at[event_id] < ROOM_FRESH_SECONDS:
            return self._rooms[event_id]
        # A crowd's requests find the room stale together: one query per event, the rest wait for it.
        reading = self._reading.get(event_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read_room(event_id))
            self._reading[event_id] = reading
            reading.add_done_callback(lambda _: self._reading.pop(event_id, None))
        return await asyncio.shield(reading)

    async def _read_room(self, event_id: str) -> Room | None:
        try:
            return await self._fetch_room(event_id)
        except DATABASE_AWAY:
            # The database is away: the room as last read (or none known) lets a booking be queued in Kafka;
            # the booking service checks the admission again before it holds, with the database back.
            log.debug("waiting room of %s not read: database unavailable", event_id)
            return self._rooms.get(event_id)

    async def _fetch_room(self, event_id: str) -> Room | None:
        now = time.monotonic()
        record = await views.waiting_room(self._pool, event_id)
        room = _room_of(record, now) if record else None
        self._rooms[event_id], self._read_at[event_id] = room, now
        return room

    def status(self, room: Room, visitor_id: str, position: int | None, admitted_at: datetime | None,
               now: datetime | None = None) -> tuple[VisitorStatus, dict[str, Any]]:
        """A visitor's status and its JSON body (CONTRACT §8.1), with an access token once admitted."""
        state = visitor_status(position, room.serving, admitted_at, now or utc_now())
        access = self.admission_token(room, visitor_id, state) if state.status == "admitted" else None
        return state, {
            "success": True, "eventId": room.event_id, "status": state.status, "position": state.position,
            "ahead": state.ahead, "servingPosition": state.serving_position,
            "estimatedWaitSeconds": state.estimated_wait_seconds, "accessToken": access,
            "admittedUntil": iso(state.admitted_until) if state.admitted_until else None,
            "opensAt": iso(room.serving.opens_at),
        }

    def admission_token(self, room: Room, visitor_id: str, state: VisitorStatus) -> str | None:
        """The access token of the visitor's admission, whether or not it has run out (its `exp` says); None
        while they wait."""
        if state.status == "waiting" or state.position is None or state.admitted_at is None:
            return None
        return self.tokens.access_token(room.event_id, visitor_id, state.position, state.admitted_at,
                                        room.serving.admission_minutes)

    def watch(self, watcher: Watcher) -> None:
        self._watchers.setdefault(watcher.event_id, set()).add(watcher)

    def unwatch(self, watcher: Watcher) -> None:
        watchers = self._watchers.get(watcher.event_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[watcher.event_id]

    @property
    def watching(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    async def moved(self, message: Message) -> None:
        """A queue.admitted message: the room as PostgreSQL has it now, and each of its watchers' new status.
        Raises when the database cannot be read: nobody is admitted and the room last read is kept."""
        room = await self._fetch_room(message.event_id)
        watchers = self._watchers.get(message.event_id)
        if room is None or not watchers:
            return
        unplaced = [w for w in watchers if w.position is None]
        if room.serving.opened and unplaced:
            # The opening: one query for the places of all this gateway's watchers of the event.
            positions = await views.queue_positions(self._pool, room.event_id, [w.queue_token for w in unplaced])
            for watcher in unplaced:
                watcher.position = positions.get(watcher.queue_token)
        data = message.data
        first, last = data.get("firstPosition"), data.get("lastPosition")
        # The message's range only says when; the database's serving position says whether. A time from the
        # future would stretch the admission, and an admission once timed keeps its time.
        at = min(datetime.fromisoformat(data["at"]), utc_now())
        for watcher in list(watchers):
            if first is not None and last is not None and watcher.position is not None \
                    and first <= watcher.position <= min(last, room.serving.serving_position) \
                    and watcher.admitted_at is None:
                watcher.admitted_at = at
            self.push(watcher, room)

    def push(self, watcher: Watcher, room: Room) -> None:
        _, body = self.status(room, watcher.visitor_id, watcher.position, watcher.admitted_at)
        if body != watcher.last:
            watcher.last = body
            watcher.updates.put_nowait(body)
            self.pushed += 1

    async def run(self) -> None:
        if self._consumer is None:
            return
        restarted = self._restarted_logs or RestartedLogs(self._consumer)
        reading = Outage(log, "following the waiting rooms")
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000, max_records=2000)
            await restarted.rewind()
            for message in tail_messages(batches):
                if message.type != topics.QUEUE_ADMITTED:
                    continue
                try:
                    await self.moved(message)
                    reading.recovered()
                except (*DATABASE_AWAY, ValueError) as exc:
                    reading.failed(exc)
