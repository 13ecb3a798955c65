"""The realtime service: pushes every seat change to every open browser over Server-Sent Events.

It tails the seat topics without a consumer group (every instance sees every change, and restarts
without waiting for a group to form) and serves `GET /events/{eventId}/live` on its own port
(adapters/sse_server.py); the gateway forwards the public URL here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from boxoffice import bootstrap
from boxoffice import messages as topics
from boxoffice.adapters.heartbeat import beat_forever
from boxoffice.adapters.kafka import consumer_lag, make_tail_consumer
from boxoffice.adapters.live_store import load_seat_map
from boxoffice.adapters.sse_server import serve, serve_handoffs
from boxoffice.config import Settings
from boxoffice.messages import MalformedMessage, decode
from boxoffice.service_layer.live_hub import LiveHub

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0


async def _consume(consumer, hub: LiveHub) -> None:  # noqa: ANN001
    while True:
        batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
        messages = []
        for records in batches.values():
            for record in records:
                try:
                    messages.append(decode(record.value))
                except MalformedMessage:
                    continue
        hub.on_messages(messages)


async def main(settings: Settings) -> None:
    async with bootstrap.runtime(settings, "realtime", produces=False, pool_size=4) as rt:
        hub = LiveHub(lambda event_id: load_seat_map(rt.pool, event_id))
        consumer = await make_tail_consumer(
            settings, [topics.SEAT_RESERVED, topics.SEAT_RELEASED, topics.BOOKING_CONFIRMED])

        async def info() -> dict[str, object]:
            return {"lag": await consumer_lag(consumer), "connections": hub.connections, "events": len(hub.maps),
                    "delivered": hub.delivered, "dropped": hub.dropped, "port": settings.realtime_port}

        def health() -> dict[str, object]:
            return {"connections": hub.connections, "events": len(hub.maps)}

        # Each process has its own handoff socket, named after its supervisor program (realtime-2.sock).
        handoff_dir = settings.handoff_dir
        handoff = handoff_dir / f"{os.environ.get('SUPERVISOR_PROCESS_NAME', 'realtime')}.sock" if handoff_dir else None
        tasks = [asyncio.ensure_future(t) for t in (
            _consume(consumer, hub), hub.resync_gaps_forever(), hub.keep_alive_forever(KEEPALIVE_SECONDS),
            serve(hub, settings.http_host, settings.realtime_port, health),
            beat_forever(rt.pool, "realtime", settings.heartbeat_seconds, info),
            *([serve_handoffs(hub, handoff, health)] if handoff else []))]
        log.info("realtime serving live updates on %s:%d", settings.http_host, settings.realtime_port)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
            await consumer.stop()
