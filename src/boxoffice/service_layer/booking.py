"""Booking service handlers: reservation requests in, decisions and outbox rows out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from boxoffice.adapters.booking_store import OutboxRow
from boxoffice.domain.commands import ReserveSeats
from boxoffice.messages import SEAT_RESERVATION_REQUESTED, Message

log = logging.getLogger(__name__)


class ReservationStore(Protocol):
    async def reserve(self, commands: list[ReserveSeats], hold: timedelta, now: datetime) -> list[OutboxRow]: ...


class OutboxSink(Protocol):
    def submit(self, rows: list[OutboxRow]) -> None: ...


def reserve_command(message: Message) -> ReserveSeats | None:
    data = message.data
    user_id, seat_ids = data.get("userId"), data.get("seatIds")
    if not message.request_id or not isinstance(user_id, str) or not isinstance(seat_ids, list) or not seat_ids \
            or not all(isinstance(s, str) for s in seat_ids):
        return None
    return ReserveSeats(message.request_id, message.event_id, user_id, seat_ids, str(data.get("bodyHash", "")))


class ReservationHandler:
    def __init__(self, store: ReservationStore, outbox: OutboxSink, hold: timedelta,
                 clock: Callable[[], datetime]) -> None:
        self._store, self._outbox, self._hold, self._clock = store, outbox, hold, clock
        self.decided = 0
        self.batches = 0
        self.seconds_in_store = 0.0

    def stats(self) -> dict[str, float]:
        return {"decided": self.decided, "batches": self.batches,
                "storeSeconds": round(self.seconds_in_store, 3)}

    async def __call__(self, batch: list[Message]) -> None:
        commands = []
        for message in batch:
            if message.type != SEAT_RESERVATION_REQUESTED:
                continue
            command = reserve_command(message)
            if command is None:
                log.error("dropping malformed reservation request %s", message.id)
                continue
            commands.append(command)
        if not commands:
            return
        started = time.perf_counter()
        rows = await self._store.reserve(commands, self._hold, self._clock())
        self.seconds_in_store += time.perf_counter() - started
        self.batches += 1
        self.decided += len(commands)
        self._outbox.submit(rows)
