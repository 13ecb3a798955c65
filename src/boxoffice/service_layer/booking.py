"""Booking service handlers: reservation requests and the booking lifecycle, in partition order."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from boxoffice.domain.commands import ReserveSeats
from boxoffice.messages import (
    SEAT_RESERVATION_REQUESTED,
    SEAT_RESERVATION_TIMEOUT,
    Message,
)
from boxoffice.service_layer.ports import OutboxRow, OutboxSink

log = logging.getLogger(__name__)


class ReservationStore(Protocol):
    async def reserve(self, commands: list[ReserveSeats], hold: timedelta, now: datetime) -> list[OutboxRow]: ...


class LifecycleStore(Protocol):
    async def handle_many(self, batch: list[Message], now: datetime) -> list[OutboxRow]: ...

    async def expire(self, booking_ids: list[str], now: datetime) -> list[OutboxRow]: ...


class HoldWatcher(Protocol):
    def hold_created(self, expires_at: datetime) -> None: ...


def reserve_command(message: Message) -> ReserveSeats | None:
    data = message.data
    user_id, seat_ids = data.get("userId"), data.get("seatIds")
    if not message.request_id or not isinstance(user_id, str) or not isinstance(seat_ids, list) or not seat_ids \
            or not all(isinstance(s, str) for s in seat_ids):
        return None
    return ReserveSeats(message.request_id, message.event_id, user_id, seat_ids, str(data.get("bodyHash", "")),
                        str(data.get("email") or ""))


def _reserve_or_log(message: Message) -> ReserveSeats | None:
    command = reserve_command(message)
    if command is None:
        log.error("dropping malformed reservation request %s", message.id)
    return command


def _runs(batch: list[Message]) -> list[tuple[str, list[Message]]]:
    """Consecutive messages handled alike: reservation requests, timeouts, or other lifecycle messages."""
    runs: list[tuple[str, list[Message]]] = []
    for message in batch:
        kind = message.type if message.type in (SEAT_RESERVATION_REQUESTED, SEAT_RESERVATION_TIMEOUT) else "other"
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(message)
        else:
            runs.append((kind, [message]))
    return runs


class BookingHandler:
    """Each run of consecutive messages is one transaction: reservation requests decided as a batch,
    timeouts expired as a batch, other lifecycle messages one savepoint each; runs in partition order."""

    def __init__(self, reservations: ReservationStore, lifecycle: LifecycleStore, outbox: OutboxSink,
                 hold: timedelta, clock: Callable[[], datetime], holds: HoldWatcher | None = None) -> None:
        self._reservations, self._lifecycle, self._outbox = reservations, lifecycle, outbox
        self._hold, self._clock, self._holds = hold, clock, holds
        self.decided = 0
        self.batches = 0
        self.lifecycle_messages = 0
        self.seconds_in_store = 0.0

    def stats(self) -> dict[str, float]:
        return {"decided": self.decided, "batches": self.batches, "lifecycle": self.lifecycle_messages,
                "storeSeconds": round(self.seconds_in_store, 3)}

    async def __call__(self, batch: list[Message]) -> None:
        for kind, run in _runs(batch):
            started = time.perf_counter()
            now = self._clock()
            if kind == SEAT_RESERVATION_REQUESTED:
                await self._reserve([c for c in map(_reserve_or_log, run) if c is not None], now)
                continue
            if kind == SEAT_RESERVATION_TIMEOUT:
                rows = await self._lifecycle.expire([str(m.data.get("bookingId", "")) for m in run], now)
            else:
                rows = await self._lifecycle.handle_many(run, now)
            self.seconds_in_store += time.perf_counter() - started
            self.lifecycle_messages += len(run)
            self._outbox.submit(rows)

    async def _reserve(self, commands: list[ReserveSeats], now: datetime) -> None:
        if not commands:
            return
        started = time.perf_counter()
        rows = await self._reservations.reserve(commands, self._hold, now)
        self.seconds_in_store += time.perf_counter() - started
        self.batches += 1
        self.decided += len(commands)
        self._outbox.submit(rows)
        if self._holds is not None:
            self._holds.hold_created(now + self._hold)
