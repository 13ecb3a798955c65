"""The hold expiry scheduler. Kafka has no scheduled messages: deadlines live in PostgreSQL.

It sleeps until the next deadline (not a fixed poll), publishes `seat.reservation.timeout` for every
hold that is due, and lets the booking handler expire them in partition order. A timeout that was lost
(or whose booking is still pending a while later) is published again.

Every booking process runs one, but only the process holding a PostgreSQL advisory lock publishes; the
others stand by and take over when its connection ends (PostgreSQL releases the lock then, also when
the process was killed). The leader checks every second that its connection still holds the lock (the
backend may have been terminated or the database restarted while it slept), and stands down and tries
again when it does not. Expiring is idempotent anyway: this only spares duplicate timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

import asyncpg

from boxoffice.adapters.kafka import BrokerUnavailable, Publisher
from boxoffice.adapters.postgres import TRANSIENT_ERRORS, Connection
from boxoffice.logs import Outage
from boxoffice.messages import SEAT_RESERVATION_TIMEOUT, Message, iso

log = logging.getLogger(__name__)

IDLE_RECHECK = 30.0
LEADER_LOCK = 0x626F_7865_7870  # the advisory lock key of the expiry scheduler
TAKE_OVER_EVERY = 0.5  # how often a standby scheduler tries the lock
LOCK_CHECK_EVERY = 1.0  # how often the leader makes sure that it still holds the lock, at the longest

_HOLDS_LOCK = """SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                 AND granted AND objsubid = 1 AND (classid::bigint << 32 | objid::bigint) = $1)"""


class LockLost(Exception):
    """The leader's connection no longer holds the lock."""


class ExpiryScheduler:
    def __init__(self, pool: asyncpg.Pool, publisher: Publisher, clock: Callable[[], datetime],
                 resend_after: float = 5.0, longest_sleep: float = IDLE_RECHECK) -> None:
        """longest_sleep: at most the hold time, so that the scheduling process also sees in time the
        holds that other booking processes made (only its own wake it up)."""
        self._pool, self._publisher, self._clock = pool, publisher, clock
        self._resend_after = resend_after
        self._longest_sleep = min(longest_sleep, IDLE_RECHECK)
        self._sent: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._next: datetime | None = None
        self.published = 0
        self.leading = False
        self._database = Outage(log, "scheduling hold expiry")
        self._broker = Outage(log, "publishing hold timeouts")

    def hold_created(self, expires_at: datetime) -> None:
        """Wakes the scheduler when a new hold is due before the deadline it sleeps towards."""
        if self._next is None or expires_at < self._next:
            self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                # The lock belongs to this connection's session: it is held for as long as the connection
                # is, and released by `_lead_if_first` before the connection goes back to the pool, or with
                # the connection when it breaks.
                async with self._pool.acquire() as con:
                    try:
                        await self._lead_if_first(con)
                    except TRANSIENT_ERRORS:
                        # A connection that failed may hang its release: closed instead (unless the pool
                        # already took back a broken one).
                        with contextlib.suppress(asyncpg.InterfaceError):
                            con.terminate()
                        raise
            except TRANSIENT_ERRORS as exc:
                self._database.failed(exc)
            except LockLost:
                log.warning("this process no longer holds the hold expiry lock; standing down")
            await asyncio.sleep(TAKE_OVER_EVERY)

    async def _lead_if_first(self, con: Connection) -> None:
        leads = await con.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK, timeout=LOCK_CHECK_EVERY)
        self._database.recovered()
        if not leads:
            return
        log.info("this process schedules hold expiry")
        self.leading = True
        try:
            await self._lead(con)
        finally:
            self.leading = False
            # The pool keeps session state (`keep_session`): a connection lent on must not carry the lock. One
            # that broke may already be back in the pool, where asking it anything raises: its lock went with it.
            with contextlib.suppress(*TRANSIENT_ERRORS, asyncpg.PostgresError):
                if not con.is_closed():
                    await con.execute("SELECT pg_advisory_unlock_all()", timeout=LOCK_CHECK_EVERY)

    async def _lead(self, con: Connection) -> None:
        """Passes over the due holds until the connection (and with it the lock) is lost."""
        self._sent.clear()
        while True:
            try:
                delay = await self._tick(con)
                self._broker.recovered()
            except BrokerUnavailable as exc:
                self._broker.failed(exc)
                delay = 0.5
            self._wake.clear()
            await self._sleep(con, delay)

    async def _sleep(self, con: Connection, delay: float) -> None:
        """Until the next pass is due or a new hold wakes it up, making sure meanwhile that the lock is still
        this connection's: a leader that slept through losing it would leave holds unexpired."""
        loop = asyncio.get_running_loop()
        until = loop.time() + max(delay, 0.0)
        while not self._wake.is_set() and (left := until - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, LOCK_CHECK_EVERY)):
                    await self._wake.wait()
            if (not self._wake.is_set() and until > loop.time()
                    and not await con.fetchval(_HOLDS_LOCK, LEADER_LOCK, timeout=LOCK_CHECK_EVERY)):
                raise LockLost

    async def _tick(self, con: Connection) -> float:
        now = self._clock()
        due = await con.fetch(
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
        upcoming = await con.fetchval(
            "SELECT min(expires_at) FROM bookings WHERE status = 'pending' AND expires_at > $1", now)
        self._next = upcoming
        waits = [self._longest_sleep]
        if upcoming is not None:
            waits.append((upcoming - self._clock()).total_seconds())
        if self._sent:
            waits.append(self._resend_after)
        return min(waits)


