"""The realtime service: pushes every seat change to every open browser over Server-Sent Events.

It tails the seat topics without a consumer group (every instance sees every change, and restarts
without waiting for a group to form) and serves `GET /events/{eventId}/live` on its own port; the
gateway forwards the public URL here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from boxoffice import bootstrap
from boxoffice import messages as topics
from boxoffice.adapters.heartbeat import beat_forever
from boxoffice.adapters.kafka import consumer_lag, make_tail_consumer
from boxoffice.adapters.live_store import load_seat_map
from boxoffice.config import Settings
from boxoffice.messages import MalformedMessage, decode
from boxoffice.service_layer.live_hub import LiveHub, Subscriber

log = logging.getLogger(__name__)

_EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
KEEPALIVE_SECONDS = 15.0


def _last_seen(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    return int(raw) if raw and raw.isdigit() else None


async def _stream(hub: LiveHub, subscriber: Subscriber, first: list[bytes]) -> AsyncIterator[bytes]:
    try:
        yield b"".join(first)
        while True:
            frame = await subscriber.queue.get()
            if frame is None:
                return
            # Whatever queued up meanwhile goes out in the same write.
            while not subscriber.queue.empty():
                more = subscriber.queue.get_nowait()
                if more is None:
                    yield frame
                    return
                frame += more
            yield frame
    finally:
        hub.unsubscribe(subscriber)


def create_app(hub: LiveHub) -> Starlette:
    async def live(request: Request) -> Response:
        event_id = request.path_params["event_id"]
        if not _EVENT_ID.match(event_id):
            return JSONResponse({"success": False, "error": "Malformed event id", "code": "invalid_id"}, 422)
        seat_map = await hub.seat_map(event_id)
        if seat_map is None:
            return JSONResponse({"success": False, "error": f"Event {event_id} does not exist",
                                 "code": "event_not_found"}, 404)
        subscriber, first = hub.subscribe(seat_map, _last_seen(request))
        return StreamingResponse(_stream(hub, subscriber, first), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "connections": hub.connections, "events": len(hub.maps)})

    return Starlette(routes=[Route("/events/{event_id}/live", live), Route("/health", health)])


async def _consume(consumer, hub: LiveHub) -> None:  # noqa: ANN001
    while True:
        batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
        for records in batches.values():
            for record in records:
                try:
                    hub.on_message(decode(record.value))
                except MalformedMessage:
                    continue


async def main(settings: Settings) -> None:
    import uvicorn

    async with bootstrap.runtime(settings, "realtime", produces=False, pool_size=4) as rt:
        hub = LiveHub(lambda event_id: load_seat_map(rt.pool, event_id))
        consumer = await make_tail_consumer(
            settings, [topics.SEAT_RESERVED, topics.SEAT_RELEASED, topics.BOOKING_CONFIRMED])

        async def info() -> dict[str, object]:
            return {"lag": await consumer_lag(consumer), "connections": hub.connections, "events": len(hub.maps),
                    "delivered": hub.delivered, "dropped": hub.dropped, "port": settings.realtime_port}

        server = uvicorn.Server(uvicorn.Config(
            create_app(hub), host=settings.http_host, port=settings.realtime_port, loop="none", http="httptools",
            access_log=False, log_level="warning", backlog=8192, timeout_keep_alive=75))
        server.install_signal_handlers = lambda: None  # the service runner owns the signals
        tasks = [asyncio.ensure_future(t) for t in (
            _consume(consumer, hub), hub.resync_gaps_forever(), hub.keep_alive_forever(KEEPALIVE_SECONDS),
            server.serve(),
            beat_forever(rt.pool, "realtime", settings.heartbeat_seconds, info))]
        log.info("realtime serving live updates on %s:%d", settings.http_host, settings.realtime_port)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            server.should_exit = True
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
            await consumer.stop()
