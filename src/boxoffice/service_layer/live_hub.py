"""Fans every seat change out to every open live connection of its event.

A change is encoded into an SSE frame once and handed to every subscriber of its event, which writes it
without waiting. A subscriber that cannot take more (its backlog is full) is dropped, so a slow browser
never slows the others; it reconnects with its last event id and resumes where it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from boxoffice.logs import Outage
from boxoffice.messages import Message
from boxoffice.service_layer.live import LIVE_TYPES, LiveSeatMap, RecentChanges
from boxoffice.service_layer.live_ports import Subscriber

log = logging.getLogger(__name__)

SnapshotLoader = Callable[[str], Awaitable[tuple[int, list[dict[str, Any]]] | None]]
GAP_RESYNC_SECONDS = 2.0


def sse_frame(payload: dict[str, Any]) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (payload["seq"], orjson.dumps(payload))


@dataclass(eq=False)
class QueueSubscriber(Subscriber):
    """Frames wait in a bounded queue for a reader task; None in the queue ends the stream."""

    event_id: str
    queue: asyncio.Queue[bytes | None]

    def deliver(self, frame: bytes) -> bool:
        try:
            self.queue.put_nowait(frame)
            return True
        except asyncio.QueueFull:
            return False

    def close(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class LiveHub:
    def __init__(self, load: SnapshotLoader, queue_size: int = 1000) -> None:
        self._load = load
        self._queue_size = queue_size
        self.maps: dict[str, LiveSeatMap] = {}
        self._loading: dict[str, asyncio.Future[LiveSeatMap | None]] = {}
        self._arrived_while_loading: dict[str, list[Message]] = {}
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.recent = RecentChanges()
        self.delivered = 0
        self.dropped = 0

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self.subscribers.values())

    async def seat_map(self, event_id: str) -> LiveSeatMap | None:
        """The event's live map, loaded from the database once and kept current from then on."""
        if event_id in self.maps:
            return self.maps[event_id]
        loading = self._loading.get(event_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load_map(event_id))
            self._loading[event_id] = loading
        return await asyncio.shield(loading)

    async def _load_map(self, event_id: str) -> LiveSeatMap | None:
        self._arrived_while_loading[event_id] = []
        try:
            loaded = await self._load(event_id)
        finally:
            self._loading.pop(event_id, None)
            arrived = self._arrived_while_loading.pop(event_id, [])
        if loaded is None:
            return None
        seat_map = LiveSeatMap(event_id, *loaded)
        for message in arrived:
            seat_map.offer(message)  # nobody watches yet: changes need no broadcast
        self.maps[event_id] = seat_map
        return seat_map

    def on_messages(self, messages: list[Message]) -> None:
        """Changes that arrived together go out together: one write per connection and event, so a backlog
        costs fewer writes per change, not more."""
        frames: dict[str, list[bytes]] = {}
        for message in messages:
            if message.type not in LIVE_TYPES:
                continue
            self.recent.record(message)
            seat_map = self.maps.get(message.event_id)
            if seat_map is None:
                if message.event_id in self._arrived_while_loading:
                    self._arrived_while_loading[message.event_id].append(message)
                continue
            for change in seat_map.offer(message):
                frames.setdefault(message.event_id, []).append(sse_frame(change))
        for event_id, event_frames in frames.items():
            self._broadcast(event_id, b"".join(event_frames), messages=len(event_frames))

    def subscribe(self, seat_map: LiveSeatMap, last_seen: int | None,
                  subscriber: Subscriber | None = None) -> tuple[Subscriber, list[bytes]]:
        """Registers a connection and returns what it must be sent first. No await in between: nothing
        can happen between the snapshot (or the replay) and the stream that follows it."""
        missed = seat_map.since(last_seen) if last_seen is not None else None
        first = [sse_frame(c) for c in missed] if missed is not None else [self._snapshot_frame(seat_map)]
        if subscriber is None:
            subscriber = QueueSubscriber(seat_map.event_id, asyncio.Queue(self._queue_size))
        self.subscribers.setdefault(seat_map.event_id, set()).add(subscriber)
        return subscriber, first

    def _snapshot_frame(self, seat_map: LiveSeatMap) -> bytes:
        # `recent`: the activity a page opening shows; changes after the snapshot follow as messages.
        return sse_frame({**seat_map.snapshot(), "recent": self.recent.up_to(seat_map.event_id, seat_map.seq)})

    def unsubscribe(self, subscriber: Subscriber) -> None:
        watchers = self.subscribers.get(subscriber.event_id)
        if watchers is not None:
            watchers.discard(subscriber)

    def _broadcast(self, event_id: str, frame: bytes, messages: int = 1) -> None:
        subscribers = self.subscribers.get(event_id)
        if not subscribers:
            return
        for subscriber in list(subscribers):
            if not subscriber.deliver(frame):
                self._drop(subscriber)
        self.delivered += len(subscribers) * messages

    def _drop(self, subscriber: Subscriber) -> None:
        self.unsubscribe(subscriber)
        self.dropped += 1
        subscriber.close()  # ends its stream; the browser reconnects and resumes

    async def keep_alive_forever(self, every: float) -> None:
        """A comment line now and then keeps idle connections open through proxies and finds dead ones."""
        while True:
            await asyncio.sleep(every)
            for event_id in list(self.subscribers):
                self._broadcast(event_id, b": keepalive\n\n", messages=0)

    async def resync_gaps_forever(self, every: float = 0.5) -> None:
        """A change that never arrives (a broker restart can lose one) would stall a map: reload it. A reload
        that fails (the database is down) is tried again at the next pass, without a line each time."""
        reloading = Outage(log, "reloading seat maps")
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            for event_id, seat_map in list(self.maps.items()):
                if seat_map.gap_since is not None and now - seat_map.gap_since > GAP_RESYNC_SECONDS:
                    if not reloading.ongoing:
                        log.warning("event %s: change %d never arrived; reloading its seat map", event_id,
                                    seat_map.seq + 1)
                    try:
                        await self.reload(event_id)
                    except Exception as exc:  # noqa: BLE001 - the store's errors are its own; this loop must go on
                        reloading.failed(exc)
                    else:
                        reloading.recovered()

    async def reload(self, event_id: str) -> None:
        loaded = await self._load(event_id)
        if loaded is None:
            return
        fresh = LiveSeatMap(event_id, *loaded)
        self.maps[event_id] = fresh
        self._broadcast(event_id, self._snapshot_frame(fresh))
