"""The public live stream without an ASGI task per connection.

Measured: relaying Server-Sent Events through the ASGI app woke one task per connection for every seat
change, and that was most of the gateway's cost at 1,000 open pages. This uvicorn protocol notices
`GET /events/{eventId}/live` when its headers are parsed and splices the connection to the realtime
service: bytes from there are written to the browser's socket as they come, nothing parses them again.
Every other request takes uvicorn's usual path, and so does the live route when splicing is impossible.

On one machine it does better: the browser's socket itself is handed to the realtime service over a Unix
socket (SCM_RIGHTS), so frames go from the realtime service to the browser without passing through here.
"""

from __future__ import annotations

import array
import asyncio
import re
import socket
import time
from urllib.parse import parse_qs, urlsplit

import orjson
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from boxoffice import metrics
from boxoffice.config import get_settings
from boxoffice.entrypoints.gateway import telemetry
from boxoffice.entrypoints.gateway.direct_answers import DirectAnswers
from boxoffice.entrypoints.gateway.middleware import EVERY_ANSWER_HEADERS
from boxoffice.entrypoints.gateway.one_write import HeadWithBody
from boxoffice.service_layer.live import change_number

_LIVE = re.compile(rb"^/events/[A-Za-z0-9][A-Za-z0-9_-]{0,63}/live(\?[^ ]*)?$")
BACKLOG_LIMIT_BYTES = 1 << 20


def _closing_answer(status: bytes, error: str, code: str, extra_headers: bytes = b"") -> bytes:
    """A whole answer in the API's JSON error shape, with the headers every answer has, written straight to the
    socket before it is closed."""
    body = orjson.dumps({"success": False, "error": error, "code": code})
    every = b"".join(b"%s: %s\r\n" % header for header in EVERY_ANSWER_HEADERS)
    return (b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n%s%sContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, every, extra_headers, len(body), body))


def _with_request_id(answer: bytes) -> bytes:
    """An edge answer with an X-Request-ID of its own, as every other answer has one."""
    return answer.replace(b"\r\n", b"\r\nx-request-id: %s\r\n" % telemetry.correlation_id_of(None).encode(), 1)


_UNAVAILABLE = _closing_answer(b"503 Service Unavailable", "Live updates are unavailable right now; retry in a moment",
                               "live_unavailable", b"Retry-After: 2\r\n")


class _Handoff:
    """The realtime processes' handoff sockets on this machine, taken in turn."""

    RESCAN_SECONDS = 1.0

    def __init__(self) -> None:
        self._sender: socket.socket | None = None
        self._targets: list[str] = []
        self._scanned = -1e9
        self._turn = 0

    def _scan(self, *, fresh: bool = False) -> list[str]:
        """The sockets found at most a second ago; looked for again at once when none were found (a realtime
        process that was just restarted is used as soon as its socket is there) or when `fresh`."""
        now = time.monotonic()
        if fresh or not self._targets or now - self._scanned > self.RESCAN_SECONDS:
            directory = get_settings().handoff_dir
            self._targets = sorted(str(p) for p in directory.glob("*.sock")) if directory and directory.is_dir() else []
            self._scanned = now
        return self._targets

    def give(self, browser: asyncio.Transport, request: bytes) -> bool:
        """Passes the browser's socket and its request to a realtime process, which then writes to it
        directly. False (relay instead) when none is there or none can take more right now."""
        connection = browser.get_extra_info("socket")
        if connection is None:
            return False
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [connection.fileno()]))]
        browser.pause_reading()
        # Sockets of processes that have since restarted refuse: look again once before relaying.
        for targets in (self._scan(), self._scan(fresh=True)):
            for _ in range(len(targets)):
                self._turn = (self._turn + 1) % len(targets)
                try:
                    # sendmsg itself: socket.send_fds drops its address argument before Python 3.12.
                    self._sender.sendmsg([request], rights, 0, targets[self._turn])
                    return True
                except OSError:  # that process is restarting or full: the next one
                    continue
        browser.resume_reading()
        return False


_handoff = _Handoff()


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


# The request line and headers of one request: the parser keeps them in memory until they are complete.
MAX_HEAD_BYTES = 64 * 1024
REFUSED_LINGER_SECONDS = 2.0
# From connecting, or from a request's first byte, to the end of its headers: a client that sends them
# slowly (or not at all) would otherwise hold its connection for ever.
HEAD_TIMEOUT_SECONDS = 10.0
# From the end of the headers to the end of the body (at most 64 KiB): a client that stops sending it would
# otherwise hold its connection, and a task waiting for the body, for ever.
BODY_TIMEOUT_SECONDS = 10.0
# A refusal waits for the answers still owed before it on the connection, at most this long (a hold's answer
# comes within BOXOFFICE_BOOKING_REPLY_SECONDS, 202 at the latest).
OWED_ANSWERS_WITHIN_SECONDS = 30.0
_TOO_SLOW = _closing_answer(b"408 Request Timeout", "The request headers took too long to arrive", "request_timeout")
_BODY_TOO_SLOW = _closing_answer(b"408 Request Timeout", "The request body took too long to arrive", "request_timeout")
_HEAD_TOO_LARGE = _closing_answer(b"431 Request Header Fields Too Large",
                                  "The request line and headers are too large (at most 64 KiB)", "headers_too_large")
_NOT_HTTP = _closing_answer(b"400 Bad Request", "The request is not valid HTTP", "bad_request")
# The route label of the requests refused here, before any route is known.
EDGE_ROUTE = "refused at the edge"


def _cancel(timer: asyncio.TimerHandle | None) -> None:
    if timer is not None:
        timer.cancel()


class LiveSplicingProtocol(DirectAnswers):
    _upstream: asyncio.Transport | None = None
    _spliced = False
    _head_bytes = 0  # of the request whose head is being read; -1 once its headers are complete
    _refused = False
    _refusal: bytes | None = None  # written once the answers still owed on the connection have gone
    _read_tail = b""  # the last bytes of the previous read: a head's end may be split between two reads
    _ended = False  # the client sent all it will send (a half-close): close once every answer has gone
    _head_timer: asyncio.TimerHandle | None = None
    _head_since: float | None = None  # when the head being read began; None between heads
    _body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        """Times a head from now. The connection's one timer is left running between heads and looks, when it
        fires, at the head then being read: a timer made and cancelled per request was 2 % of the gateway's CPU
        per hold."""
        self._head_since = self.loop.time()
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_timer_fired)

    def _disarm_head_timer(self) -> None:
        self._head_since = None

    def _head_timer_fired(self) -> None:
        self._head_timer = None
        if self._head_since is None:
            return  # no head on its way: the next one arms the timer again
        left = self._head_since + HEAD_TIMEOUT_SECONDS - self.loop.time()
        if left > 0:
            self._head_timer = self.loop.call_later(left, self._head_timer_fired)
        elif self._head_bytes >= 0 and not self._refused and not self.transport.is_closing():
            self._refuse(_TOO_SLOW)

    def data_received(self, data: bytes) -> None:
        if self._refused or self._spliced:
            return  # what is still coming of a refused head, or after a live request, is dropped
        if self._head_bytes >= 0:
            room = MAX_HEAD_BYTES - self._head_bytes
            # Over the limit unless the head ends within it (the rest of this chunk is body); its end may have
            # begun in the previous read.
            seen = self._read_tail + data
            if len(data) > room and seen.find(b"\r\n\r\n", 0, max(room, 0) + len(self._read_tail) + 3) < 0:
                self._refuse(_HEAD_TOO_LARGE)
                return
            self._head_bytes += len(data)
        self._read_tail = data[-3:]
        super().data_received(data)
        # Headers complete, body not (most bodies come with their headers: no timer for those); never on a
        # connection handed to the WebSocket protocol.
        if (self._head_bytes == -1 and self._body_timer is None and not self._spliced and not self._refused
                and self.transport.get_protocol() is self):
            self._body_timer = self.loop.call_later(BODY_TIMEOUT_SECONDS, self._body_too_slow)

    def _disarm_body_timer(self) -> None:
        _cancel(self._body_timer)
        self._body_timer = None

    def _body_too_slow(self) -> None:
        self._body_timer = None
        if self._head_bytes != -1 or self._refused or self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self.transport.close()  # the app answered without waiting for the body: nothing more to say
            return
        if cycle is not None:  # the app, waiting for the body, reads a disconnect, and what it sends is dropped
            cycle.disconnected = True
            cycle.message_event.set()
        self._refuse(_BODY_TOO_SLOW)

    def send_400_response(self, msg: str) -> None:
        """What the parser refuses (a control character in a header, a broken request line or chunk): the API's
        JSON error, where uvicorn answers in plain text."""
        self._refuse(_NOT_HTTP)

    def _refuse(self, answer: bytes) -> None:
        """The answer, after those still owed for the requests before it on this connection, then a lingering
        close: closing at once with unread data resets the connection, and the client could lose the answer;
        what it still sends is dropped for a moment, then it is cut off."""
        self._refused = True
        self._disarm_head_timer()
        self._disarm_body_timer()
        metrics.HTTP_REQUESTS.inc("other", EDGE_ROUTE, answer[9:12].decode())  # "HTTP/1.1 408 ..."
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.more_body:
            # The request the refusal is about (its body broke off): never answered, and not waited for.
            cycle.disconnected = True
            cycle.message_event.set()
            if self.pipeline and self.pipeline[0][0] is cycle:
                self.pipeline.popleft()
        self._refusal = answer
        if not self._owes_answers():
            self._write_refusal()
        else:  # an answer that never comes does not keep the connection for ever
            self.loop.call_later(OWED_ANSWERS_WITHIN_SECONDS, self._stop_waiting_for_owed_answers)

    def _stop_waiting_for_owed_answers(self) -> None:
        if self._refusal is None:  # written when they came
            return
        for cycle in (self.cycle, *(c for c, _ in self.pipeline)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # what it would still send is dropped
        self.pipeline.clear()
        self._write_refusal()

    def _owes_answers(self) -> bool:
        """Whether a request read before is still being answered (or waits its turn behind one)."""
        cycle = self.cycle
        return bool(self.pipeline) or (cycle is not None and not cycle.response_complete and not cycle.disconnected)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._owes_answers() or self.transport.is_closing():
            return
        if self._refusal is not None:
            self._write_refusal()
        elif self._ended:
            self.transport.close()

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio.Protocol's own signature
        """A client that half-closes after its requests still gets their answers (uvicorn closes at once)."""
        if self._refused or not self._owes_answers():
            return None  # the transport closes
        self._ended = True
        return True

    def _write_refusal(self) -> None:
        answer, self._refusal = self._refusal, None
        if answer is None or self.transport.is_closing():
            return
        self.transport.write(_with_request_id(answer))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(REFUSED_LINGER_SECONDS, self.transport.close)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # Each request's head is timed from its first byte, also one that begins in the read that ends the
        # request before it (connection_made times the first).
        if self._head_since is None:
            self._arm_head_timer()

    def on_message_complete(self) -> None:
        self._head_bytes = 0  # the next request's head starts
        self._disarm_body_timer()
        if not self._spliced:
            super().on_message_complete()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_bytes == -1:
            # A chunked body's trailer field: never one of the request's headers (RFC 9110 §6.5.1), and not kept
            # (a stream of them grew the gateway's memory 17 times what was sent, past the head's 64 KiB).
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_bytes = -1
        self._disarm_head_timer()
        if self._spliced:
            return  # a request pipelined behind a live one: the connection is that stream's now
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.parser.get_method() == b"GET" and _LIVE.match(self.url):
            self._spliced = True
            self._unset_keepalive_if_required()
            path, _, query = self.url.partition(b"?")
            last = dict(self.headers).get(b"last-event-id") or parse_qs(query).get(b"lastEventId", [b""])[0]
            resume = last if change_number(last.decode("latin-1")) is not None else b""
            self.loop.create_task(self._splice(path, resume))
            return
        cycle = self.cycle
        super().on_headers_complete()
        # A new request's cycle, not yet running; uvicorn writes no body for a HEAD, so its head is not kept.
        if self.cycle is not cycle and isinstance(self.cycle, RequestResponseCycle) and self.scope["method"] != "HEAD":
            self.cycle.transport = HeadWithBody(self.transport)  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if not self._spliced:
            super().on_body(body)

    async def _splice(self, target: bytes, last_event_id: bytes) -> None:
        resume = b"Last-Event-ID: " + last_event_id + b"\r\n" if last_event_id else b""
        request = b"GET " + target + b" HTTP/1.1\r\nHost: realtime\r\n" + resume + b"\r\n"
        if _handoff.give(self.transport, request):
            metrics.LIVE_SPLICED.inc()
            self.transport.close()  # only this process's descriptor: the realtime service holds its own
            return
        realtime = urlsplit(get_settings().realtime_url or "")
        try:
            upstream, _ = await self.loop.create_connection(
                lambda: _Upstream(self.transport), realtime.hostname or "127.0.0.1", realtime.port or 80)
        except OSError:
            self.transport.write(_with_request_id(_UNAVAILABLE))
            self.transport.close()
            return
        if self.transport.is_closing():
            upstream.close()
            return
        self._upstream = upstream
        metrics.LIVE_SPLICED.inc()
        upstream.write(request)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        _cancel(self._head_timer)
        self._disarm_body_timer()
        if self._upstream is not None:
            self._upstream.close()
        super().connection_lost(exc)
