"""What the live-update servers (adapters/sse_server.py) need from the hub: open connections and the feed."""

from __future__ import annotations

from typing import Protocol

from boxoffice.service_layer.live import LiveSeatMap


class Subscriber:
    """One open connection. `deliver` must not block: False means it is too far behind to keep."""

    event_id: str

    def deliver(self, frame: bytes) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class LiveFeed(Protocol):
    async def seat_map(self, event_id: str) -> LiveSeatMap | None: ...

    def subscribe(self, seat_map: LiveSeatMap, last_seen: int | None,
                  subscriber: Subscriber | None = None) -> tuple[Subscriber, list[bytes]]: ...

    def unsubscribe(self, subscriber: Subscriber) -> None: ...
