"""What the gateway's routes need, built once at start-up."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from boxoffice import views
from boxoffice.adapters.heartbeat import beat_status, read_heartbeats, stopped
from boxoffice.adapters.kafka import Publisher
from boxoffice.config import Settings
from boxoffice.domain.tickets import TicketSeal
from boxoffice.entrypoints.gateway.access import Access
from boxoffice.entrypoints.gateway.queue_watch import QueueWatch
from boxoffice.entrypoints.gateway.replies import ReplyWaiter
from boxoffice.entrypoints.gateway.request_ids import RequestIds
from boxoffice.logs import Outage
from boxoffice.service_layer.door_ports import DoorUnitOfWork
from boxoffice.service_layer.payment_ports import PaymentProvider

log = logging.getLogger(__name__)


class SeatDirectory:
    """Which seats each event has; seat maps do not change once an event exists, so they are cached."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._seats: dict[str, frozenset[str]] = {}
        self._loading: dict[str, asyncio.Future[frozenset[str] | None]] = {}

    async def seats_of(self, event_id: str) -> frozenset[str] | None:
        seats = self._seats.get(event_id)
        if seats is not None:
            return seats
        # A crowd's first requests arrive together: one query per event, the rest wait for it.
        loading = self._loading.get(event_id)
        if loading is None:
            loading = asyncio.ensure_future(views.seat_ids(self._pool, event_id))
            self._loading[event_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(event_id, None))
        seats = await asyncio.shield(loading)
        if seats:
            self._seats[event_id] = seats
        return seats


HeartbeatReader = Callable[[], Awaitable[dict[str, dict[str, Any]]]]

READ_TIMEOUT_SECONDS = 2.0


@dataclass
class ServiceHealth:
    """The services' heartbeats, refreshed in the background so that requests never wait for them.

    What the last read says ages with it: a service counts as up only while its heartbeat is known to be
    recent (its age when read plus the time since). So when the heartbeats cannot be read (the database is
    down), the services turn "unknown" within the stale threshold instead of staying "up" as last read."""

    read: HeartbeatReader
    stale_after: float
    services: dict[str, dict[str, Any]] = field(default_factory=dict)  # as last read
    refreshed_at: float = 0.0
    # Messages from a service prove it alive sooner than its next heartbeat is read.
    last_seen: dict[str, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    # The gateway's view of the database: it reads it every half second here.
    outage: Outage = field(init=False)

    def __post_init__(self) -> None:
        self.outage = Outage(log, "reading the services' heartbeats", clock=self.clock)

    @classmethod
    def of(cls, pool: asyncpg.Pool, stale_after: float) -> ServiceHealth:
        return cls(lambda: read_heartbeats(pool, stale_after), stale_after)

    def seen_alive(self, service: str) -> None:
        self.last_seen[service] = self.clock()

    def is_up(self, service: str) -> bool:
        now = self.clock()
        seen = self.last_seen.get(service, -1e9)
        if now - seen < self.stale_after and not self._stopped_since(service, seen):
            return True
        return self._status(service, now) == "up"

    def _stopped_since(self, service: str, moment: float) -> bool:
        """Whether the service said, as last read, that it stopped after `moment` (this clock's)."""
        beat = self.services.get(service)
        if beat is None or not stopped(beat):
            return False
        stopped_at: float = self.refreshed_at - beat["lastHeartbeatSecondsAgo"]
        return stopped_at >= moment

    def _status(self, service: str, now: float) -> str:
        if not self.refreshed_at:
            return "unknown"
        since_read = now - self.refreshed_at
        beat = self.services.get(service)
        if beat is None:
            return "down" if since_read <= self.stale_after else "unknown"
        age = beat["lastHeartbeatSecondsAgo"] + since_read
        if age <= self.stale_after:
            return beat_status(age, self.stale_after, beat)
        if beat["lastHeartbeatSecondsAgo"] > self.stale_after and since_read <= self.stale_after:
            return "down"  # it was, at a recent read
        # Stale only since the last read: down, unless the reads are failing and it may have beaten since.
        return "unknown" if self.outage.ongoing or since_read > self.stale_after else "down"

    def report(self, service: str) -> dict[str, Any]:
        """What /health shows of a service: its status, and its last heartbeat as read, aged to now."""
        now = self.clock()
        beat = self.services.get(service)
        shown: dict[str, Any] = {"status": self._status(service, now)}
        if beat is not None:
            shown |= {k: v for k, v in beat.items() if k != "status"}
            shown["lastHeartbeatSecondsAgo"] = round(beat["lastHeartbeatSecondsAgo"] + now - self.refreshed_at, 3)
        if service in self.last_seen:
            shown["lastMessageSecondsAgo"] = round(now - self.last_seen[service], 3)
        return shown

    async def refresh(self) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                self.services = await self.read()
        except Exception as exc:  # noqa: BLE001 - the database may be down: the statuses age meanwhile
            self.outage.failed(exc)
            return
        self.refreshed_at = self.clock()
        self.outage.recovered()

    async def refresh_forever(self, every: float = 0.5) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(every)


@dataclass
class Gateway:
    settings: Settings
    pool: asyncpg.Pool
    publisher: Publisher
    replies: ReplyWaiter
    request_ids: RequestIds
    seats: SeatDirectory
    health: ServiceHealth
    access: Access
    queue: QueueWatch
    tickets: TicketSeal
    door: Callable[[], DoorUnitOfWork]
    cards: PaymentProvider  # tokenises the card numbers of payments
    # What a payment or cancel needs to know of its booking (views.booking_state); reads that are asked for at
    # the same moment share one statement.
    booking_states: Callable[[str], Awaitable[Any]]
