"""The realtime service's parts: the live hub over PostgreSQL's seat maps, the tail of the seat topics, and
its servers (SSE and WebSocket on its port, and the handoff socket the gateway passes live connections to)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import asyncpg
from aiokafka import AIOKafkaConsumer

from boxoffice.adapters.heartbeat import beat_forever
from boxoffice.adapters.kafka import RestartedLogs, consumer_lag, make_tail_consumer, tail_messages
from boxoffice.adapters.live_store import load_seat_map
from boxoffice.adapters.outbox import KafkaEpochWatch
from boxoffice.adapters.sse_server import serve as serve_live
from boxoffice.adapters.sse_server import serve_handoffs
from boxoffice.bootstrap import ServiceRuntime, exits_if_stuck, restarted_logs
from boxoffice.service_layer.live import LIVE_TYPES
from boxoffice.service_layer.live_hub import LiveHub

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0


def live_hub(pool: asyncpg.Pool) -> LiveHub:
    return LiveHub(lambda event_id: load_seat_map(pool, event_id))


async def _tail(consumer: AIOKafkaConsumer, hub: LiveHub, rewinding: RestartedLogs) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
        await rewinding.rewind()
        hub.on_messages(tail_messages(batches))


async def serve(rt: ServiceRuntime) -> None:
    """Until cancelled, or until one of its tasks ends."""
    settings = rt.settings
    hub = live_hub(rt.pool)
    # No consumer group: every instance sees every change, and restarts without waiting for a group to form.
    consumer = await make_tail_consumer(settings, list(LIVE_TYPES))
    epochs = KafkaEpochWatch(rt.pool)

    async def info() -> dict[str, object]:
        return {"lag": await consumer_lag(consumer), "connections": hub.connections, "events": len(hub.maps),
                "delivered": hub.delivered, "dropped": hub.dropped, "port": settings.realtime_port}

    def health() -> dict[str, object]:
        return {"connections": hub.connections, "events": len(hub.maps)}

    # Each process has its own handoff socket, named after its supervisor program (realtime-2.sock).
    handoff_dir = settings.handoff_dir
    handoff = handoff_dir / f"{os.environ.get('SUPERVISOR_PROCESS_NAME', 'realtime')}.sock" if handoff_dir else None
    tasks = [asyncio.ensure_future(t) for t in (
        _tail(consumer, hub, restarted_logs(consumer, epochs)), epochs.run(), hub.resync_gaps_forever(),
        hub.keep_alive_forever(KEEPALIVE_SECONDS),
        serve_live(hub, settings.http_host, settings.realtime_port, health),
        beat_forever(rt.pool, "realtime", settings.heartbeat_seconds, info),
        *([serve_handoffs(hub, handoff, health)] if handoff else []))]
    log.info("realtime serving live updates on %s:%d", settings.http_host, settings.realtime_port)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        with exits_if_stuck("stopping realtime's consumer"):
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
            await consumer.stop()
