"""The realtime service's HTTP endpoint, written straight to the sockets.

Measured on two cores, an ASGI stack spent most of the fan-out's time per frame and per connection; here
a change is one `transport.write` per connection. It speaks just enough HTTP/1.1 for its two routes:
`GET /events/{eventId}/live` (Server-Sent Events, the body ends when the connection closes) and
`GET /health`. On one machine the gateway hands browsers' sockets over (`serve_handoffs`), so frames skip
the gateway entirely.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.logs import Outage
from boxoffice.service_layer.live import change_number
from boxoffice.service_layer.live_ports import LiveFeed, Subscriber

log = logging.getLogger(__name__)
_seat_maps = Outage(log, "loading seat maps")

MAX_REQUEST_BYTES = 8192
# As the gateway's: a request head must arrive within this long, or the connection is answered 408 and closed
# (one left half-sent would otherwise be held for ever).
HEAD_WITHIN_SECONDS = 10.0
BACKLOG_LIMIT_BYTES = 1 << 20  # a connection this far behind is dropped and resumes after reconnecting
_LIVE = re.compile(r"^/events/([A-Za-z0-9][A-Za-z0-9_-]{0,63})/live$")
# The headers the gateway puts on every answer (its EVERY_ANSWER_HEADERS): the stream and its errors are written here.
_EVERY_ANSWER = b"X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n"
_SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
             b"X-Accel-Buffering: no\r\n" + _EVERY_ANSWER + b"Connection: close\r\n\r\n")


class TransportSubscriber(Subscriber):
    def __init__(self, event_id: str, transport: asyncio.WriteTransport) -> None:
        self.event_id, self.transport = event_id, transport

    def deliver(self, frame: bytes) -> bool:
        if self.transport.is_closing() or self.transport.get_write_buffer_size() > BACKLOG_LIMIT_BYTES:
            return False
        self.transport.write(frame)
        return True

    def close(self) -> None:
        self.transport.close()


class LiveConnection(asyncio.Protocol):
    def __init__(self, hub: LiveFeed, health: Callable[[], dict[str, object]]) -> None:
        self._hub, self._health = hub, health
        self._request = b""
        self._transport: asyncio.Transport | None = None
        self._subscriber: Subscriber | None = None
        self._started = False
        self._serving: asyncio.Future[None] | None = None  # held: the loop keeps only a weak reference
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._head_timer = asyncio.get_running_loop().call_later(HEAD_WITHIN_SECONDS, self._head_too_slow)

    def _head_too_slow(self) -> None:
        if not self._started:
            self._reply(408, {"success": False, "error": "The request head did not arrive in time",
                              "code": "request_timeout"})

    def data_received(self, data: bytes) -> None:
        if self._started:
            return  # a client sends nothing after its request
        self._request += data
        if b"\r\n\r\n" in self._request:
            self._started = True
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._serving = asyncio.ensure_future(self._serve_or_fail(self._request.split(b"\r\n\r\n", 1)[0]))
        elif len(self._request) > MAX_REQUEST_BYTES:
            self._reply(431, {"success": False, "error": "Request headers too large", "code": "bad_request"})

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        if self._subscriber is not None:
            self._hub.unsubscribe(self._subscriber)

    async def _serve_or_fail(self, head: bytes) -> None:
        """A request that fails unforeseen is answered, never left open without a word (its head timer is off)."""
        try:
            await self._serve(head)
        except Exception:
            log.exception("serving a live request failed")
            if self._subscriber is None:
                self._reply(500, {"success": False, "error": "Something went wrong on our side",
                                  "code": "internal_error"})

    async def _serve(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[0] != "GET":
            self._reply(405, {"success": False, "error": "Only GET is served here", "code": "method_not_allowed"})
            return
        target = urlsplit(parts[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if target.path == "/health":
            self._reply(200, {"status": "ok", **self._health()})
            return
        match = _LIVE.match(unquote(target.path))
        if match is None:
            self._reply(404, {"success": False, "error": f"No such resource: GET {target.path}", "code": "not_found"})
            return
        event_id = match.group(1)
        raw_last = headers.get("last-event-id") or parse_qs(target.query).get("lastEventId", [""])[0]
        last_seen = change_number(raw_last)
        try:
            seat_map = await self._hub.seat_map(event_id)
        except Exception as exc:  # the database blinked: the browser retries
            if isinstance(exc, TRANSIENT_ERRORS):
                _seat_maps.failed(exc)  # browsers retry every few seconds: one line per outage, not per retry
            else:
                log.exception("loading the seat map of %s failed", event_id)
            self._reply(503, {"success": False, "error": "Live updates are unavailable right now",
                              "code": "live_unavailable"})
            return
        _seat_maps.recovered()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if seat_map is None:
            self._reply(404, {"success": False, "error": f"Event {event_id} does not exist",
                              "code": "event_not_found"})
            return
        self._subscriber, first = self._hub.subscribe(seat_map, last_seen, TransportSubscriber(event_id, transport))
        transport.write(_SSE_HEAD + b"".join(first))

    def _reply(self, status: int, body: dict[str, object]) -> None:
        if self._transport is None:
            return
        payload = orjson.dumps(body)
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
                  431: "Request Header Fields Too Large", 500: "Internal Server Error",
                  503: "Service Unavailable"}.get(status, "Error")
        self._transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s"
                              b"Connection: close\r\n\r\n%s"
                              % (status, reason.encode(), len(payload), _EVERY_ANSWER, payload))
        self._transport.close()


async def serve(hub: LiveFeed, host: str, port: int, health: Callable[[], dict[str, object]]) -> None:
    # Several realtime processes share the port (the kernel spreads relayed connections between them).
    server = await asyncio.get_running_loop().create_server(
        lambda: LiveConnection(hub, health), host, port, backlog=8192, reuse_address=True, reuse_port=True)
    async with server:
        await server.serve_forever()


async def serve_handoffs(hub: LiveFeed, path: Path, health: Callable[[], dict[str, object]]) -> None:
    """Adopts live connections whose sockets a gateway on this machine passes over a Unix socket, each with
    the request to answer: from then on frames go from here straight to the browser."""
    loop = asyncio.get_running_loop()
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # noqa: ASYNC240 - once, at start-up
    try:
        receiver.bind(str(path))
    except OSError as exc:  # e.g. a path too long for a Unix socket: the gateway relays instead
        log.warning("no socket handoff at %s (%s): the gateway relays live connections", path, exc)
        receiver.close()
        await asyncio.Event().wait()  # the service runs on without it
    os.chmod(path, 0o600)
    receiver.setblocking(False)

    adopting: set[asyncio.Future[None]] = set()  # held until done: the loop keeps only weak references

    async def adopt(fd: int, request: bytes) -> None:
        browser = socket.socket(fileno=fd)
        try:
            browser.setblocking(False)
            _, protocol = await loop.connect_accepted_socket(lambda: LiveConnection(hub, health), browser)
        except OSError:
            browser.close()
            return
        protocol.data_received(request)

    def receive() -> None:
        while True:
            try:
                request, fds, _, _ = socket.recv_fds(receiver, MAX_REQUEST_BYTES, 4)
            except (BlockingIOError, InterruptedError):
                return
            for extra in fds[1:]:
                os.close(extra)
            if fds:
                adoption = asyncio.ensure_future(adopt(fds[0], request))
                adopting.add(adoption)
                adoption.add_done_callback(adopting.discard)

    loop.add_reader(receiver.fileno(), receive)
    try:
        await asyncio.Event().wait()
    finally:
        loop.remove_reader(receiver.fileno())
        receiver.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # noqa: ASYNC240 - once, on the way out
