"""The public live stream without an ASGI task per connection.

Measured: relaying Server-Sent Events through the ASGI app woke one task per connection for every seat
change, and that was most of the gateway's cost at 1,000 open pages. This uvicorn protocol notices
`GET /events/{eventId}/live` when its headers are parsed and splices the connection to the realtime
service: bytes from there are written to the browser's socket as they come, nothing parses them again.
Every other request takes uvicorn's usual path, and so does the live route when splicing is impossible.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from boxoffice import metrics
from boxoffice.config import get_settings

_LIVE = re.compile(rb"^/events/[A-Za-z0-9][A-Za-z0-9_-]{0,63}/live(\?[^ ]*)?$")
BACKLOG_LIMIT_BYTES = 1 << 20
_UNAVAILABLE_BODY = (b'{"success":false,"error":"Live updates are unavailable right now; retry in a moment",'
                     b'"code":"live_unavailable"}')
_UNAVAILABLE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 2\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_UNAVAILABLE_BODY), _UNAVAILABLE_BODY))


class _Upstream(asyncio.Protocol):
    def __init__(self, browser: asyncio.Transport) -> None:
        self._browser = browser

    def data_received(self, data: bytes) -> None:
        if self._browser.is_closing():
            return
        if self._browser.get_write_buffer_size() > BACKLOG_LIMIT_BYTES:
            self._browser.close()  # too far behind: it reconnects with its last id and resumes
            return
        self._browser.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._browser.close()


class LiveSplicingProtocol(HttpToolsProtocol):
    _upstream: asyncio.Transport | None = None
    _spliced = False

    def on_headers_complete(self) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.parser.get_method() == b"GET" and _LIVE.match(self.url):
            self._spliced = True
            self._unset_keepalive_if_required()
            last = dict(self.headers).get(b"last-event-id", b"")
            self.loop.create_task(self._splice(self.url, last if last.isdigit() else b""))
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._spliced:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._spliced:
            super().on_message_complete()

    async def _splice(self, target: bytes, last_event_id: bytes) -> None:
        realtime = urlsplit(get_settings().realtime_url or "")
        try:
            upstream, _ = await self.loop.create_connection(
                lambda: _Upstream(self.transport), realtime.hostname, realtime.port)
        except OSError:
            self.transport.write(_UNAVAILABLE)
            self.transport.close()
            return
        if self.transport.is_closing():
            upstream.close()
            return
        self._upstream = upstream  # type: ignore[assignment]
        metrics.LIVE_SPLICED.inc()
        resume = b"Last-Event-ID: " + last_event_id + b"\r\n" if last_event_id else b""
        upstream.write(b"GET " + target + b" HTTP/1.1\r\nHost: realtime\r\n" + resume + b"\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._upstream is not None:
            self._upstream.close()
        super().connection_lost(exc)
