"""The hold expiry scheduler. Kafka has no scheduled messages: deadlines live in PostgreSQL.

It sleeps until the next deadline (not a fixed poll), publishes `seat.reservation.timeout` for every
hold that is due, and lets the booking handler expire them in partition order. A timeout that was lost
(or whose booking is still pending a while later) is published again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

import asyncpg

from boxoffice.adapters.kafka import BrokerUnavailable, Publisher
from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.messages import SEAT_RESERVATION_TIMEOUT, Message, iso

log = logging.getLogger(__name__)

IDLE_RECHECK = 30.0


class ExpiryScheduler:
    def __init__(self, pool: asyncpg.Pool, publisher: Publisher, clock: Callable[[], datetime],
                 resend_after: float = 5.0) -> None:
        self._pool, self._publisher, self._clock = pool, publisher, clock
        self._resend_after = resend_after
        self._sent: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._next: datetime | None = None
        self.published = 0

    def hold_created(self, expires_at: datetime) -> None:
        """Wakes the scheduler when a new hold is due before the deadline it sleeps towards."""
        if self._next is None or expires_at < self._next:
            self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                delay = await self._tick()
            except (BrokerUnavailable, *TRANSIENT_ERRORS) as exc:
                log.warning("expiry pass failed (%r); retrying", exc)
                delay = 0.5
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), max(delay, 0.0))
            except TimeoutError:
                pass

    async def _tick(self) -> float:
        now = self._clock()
        due = await self._pool.fetch(
            "SELECT booking_id::text, event_id, expires_at FROM bookings "
            "WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT 5000", now)
        fresh = time.monotonic()
        for booking_id in [b for b, at in self._sent.items() if fresh - at > self._resend_after]:
            del self._sent[booking_id]
        timeouts = [r for r in due if r["booking_id"] not in self._sent]
        if timeouts:
            await self._publisher.publish_many([
                (SEAT_RESERVATION_TIMEOUT, r["event_id"].encode(), Message(
                    SEAT_RESERVATION_TIMEOUT, r["event_id"],
                    {"bookingId": r["booking_id"], "expiresAt": iso(r["expires_at"])}).encode())
                for r in timeouts])
            for r in timeouts:
                self._sent[r["booking_id"]] = fresh
            self.published += len(timeouts)
        if len(due) >= 5000:
            return 0.0
        upcoming = await self._pool.fetchval(
            "SELECT min(expires_at) FROM bookings WHERE status = 'pending' AND expires_at > $1", now)
        self._next = upcoming
        waits = [IDLE_RECHECK]
        if upcoming is not None:
            waits.append((upcoming - self._clock()).total_seconds())
        if self._sent:
            waits.append(self._resend_after)
        return min(waits)


