"""What the gateway's routes need, built once at start-up."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from boxoffice import views
from boxoffice.adapters.heartbeat import read_heartbeats
from boxoffice.adapters.kafka import Publisher
from boxoffice.config import Settings
from boxoffice.entrypoints.gateway.access import Access
from boxoffice.entrypoints.gateway.replies import ReplyWaiter
from boxoffice.entrypoints.gateway.request_ids import RequestIds


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


@dataclass
class ServiceHealth:
    """Heartbeats of the services, refreshed in the background so that requests never wait for them."""

    pool: asyncpg.Pool
    stale_after: float
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    refreshed_at: float = 0.0
    # Messages from a service prove it alive sooner than its next heartbeat is read.
    last_seen: dict[str, float] = field(default_factory=dict)

    def seen_alive(self, service: str) -> None:
        self.last_seen[service] = time.monotonic()

    def is_up(self, service: str) -> bool:
        if time.monotonic() - self.last_seen.get(service, -1e9) < self.stale_after:
            return True
        return self.services.get(service, {}).get("status") == "up"

    async def refresh_forever(self, every: float = 0.5) -> None:
        while True:
            try:
                self.services = await read_heartbeats(self.pool, self.stale_after)
                self.refreshed_at = time.monotonic()
            except Exception:  # noqa: BLE001 - the database may blink; health just goes stale
                pass
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
