"""Holds and payments answered by the HTTP protocol itself, without an ASGI request cycle.

Measured with wrk on one core (a hold-sized request and answer): uvicorn's request cycle and an ASGI app that
only reads the body and answers cost 35–44 µs of CPU per request, the same answer given from the protocol's own
callbacks 14–16 µs; the gateway spent about 150–190 µs per hold in all under `boxoffice bench holds`. So a
request that the lean layer would answer (lean_bookings.py: a hold or a payment with a JSON body within the
limit, nothing it is unsure about) is answered here, by the same functions, with the same answer; the lean layer
stays for everything that does not come this way (a request pipelined behind another, an app behind uvicorn's
proxy-headers middleware, CORS configured, the tests' ASGI clients).

uvicorn's protocol keeps its bookkeeping (keep-alive, pipelining, the graceful shutdown, a client that goes
away) through the request's cycle: here that is a DirectAnswer, which has the attributes it reads and sets.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.types import Message
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from boxoffice.entrypoints.gateway.lean_bookings import HotRoute, decided, hot_route, sure_headers
from boxoffice.entrypoints.gateway.middleware import EVERY_ANSWER_HEADERS
from boxoffice.entrypoints.gateway.one_write import HeadWithBody

# The request targets taken here: exactly a hot route's path, nothing to unquote, no query string.
_TARGET = re.compile(rb"/bookings(/[A-Za-z0-9._~-]{1,64}/confirm)?")


class _NoOneWaits:
    """What uvicorn's protocol sets when a body arrives or the client goes: nobody waits for it here."""

    @staticmethod
    def set() -> None:
        pass


_NO_ONE_WAITS = _NoOneWaits()


class DirectAnswer:
    """A request answered here, in the place of uvicorn's RequestResponseCycle."""

    __slots__ = ("body", "disconnected", "headers", "hot", "keep_alive", "more_body", "path_params",
                 "response_complete", "response_started", "scope")
    message_event = _NO_ONE_WAITS

    def __init__(self, scope: Any, hot: HotRoute, path_params: dict[str, str], headers: dict[bytes, str],
                 keep_alive: bool) -> None:
        self.scope, self.hot, self.path_params, self.headers = scope, hot, path_params, headers
        self.keep_alive = keep_alive
        self.body = bytearray()
        self.more_body = True
        self.disconnected = False
        self.response_started = False
        self.response_complete = False


# uvicorn's answer to an exception outside the app's handlers.
_SERVER_ERROR = (STATUS_LINE[500] + b"content-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\n"
                 b"connection: close\r\n\r\nInternal Server Error")


async def _nothing_more() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class DirectAnswers(HttpToolsProtocol):
    """uvicorn's HTTP protocol, answering holds and payments itself (see the module's docstring)."""

    answered_directly = 0  # how many, in this process: the tests look
    cycle: RequestResponseCycle | DirectAnswer  # type: ignore[assignment]
    _answers_here: bool | None = None  # whether this connection's app lets the hot routes be answered here

    def _answers_hot_routes(self) -> bool:
        """Whether the hot routes may be answered here, found once per connection: uvicorn has not wrapped the
        gateway's app (a proxy's headers would change the client's address), the lean layer is on and no CORS is
        configured."""
        if self._answers_here is None:
            from boxoffice.entrypoints.gateway.app import GatewayApp

            app = self.app
            self._answers_here = isinstance(app, GatewayApp) and app.lean and app.cors is None
        return self._answers_here

    def on_headers_complete(self) -> None:
        if (self.cycle is None or self.cycle.response_complete) and (direct := self._direct_answer()) is not None:
            self.cycle = direct
            return
        super().on_headers_complete()

    def _direct_answer(self) -> DirectAnswer | None:
        if (not _TARGET.fullmatch(self.url) or self.expect_100_continue or self.root_path
                or self.limit_concurrency is not None or self.parser.should_upgrade()
                or not self._answers_hot_routes()):
            return None
        method = self.parser.get_method().decode("ascii")
        hot = hot_route(method, path := self.url.decode("ascii"))
        if hot is None or (headers := sure_headers(self.headers, hot[0].declared)) is None:
            return None
        version = self.parser.get_http_version()
        scope: Any = self.scope
        scope.update(method=method, path=path, raw_path=self.url, query_string=b"")
        if version != "1.1":
            scope["http_version"] = version
        return DirectAnswer(scope, hot[0], hot[1], headers,
                            version != "1.0" and self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if type(self.cycle) is DirectAnswer:
            self.cycle.body += body  # within the body limit: sure_headers saw its Content-Length
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if type(cycle) is not DirectAnswer:
            super().on_message_complete()
            return
        cycle.more_body = False
        asked = cycle.hot.parse(bytes(cycle.body))
        if asked is None:
            self._pass_on(cycle)
            return
        task = self.loop.create_task(self._answer(cycle, asked))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _pass_on(self, cycle: DirectAnswer) -> None:
        """A body that fails validation: the app answers it, as uvicorn would have had it."""
        self.cycle = RequestResponseCycle(
            scope=self.scope, transport=HeadWithBody(self.transport), flow=self.flow,  # type: ignore[arg-type]
            logger=self.logger, access_logger=self.access_logger, access_log=self.access_log,
            default_headers=self.server_state.default_headers, message_event=asyncio.Event(),
            expect_100_continue=False, keep_alive=cycle.keep_alive, on_response=self.on_response_complete)
        self.cycle.body, self.cycle.more_body = cycle.body, False
        self.cycle.message_event.set()  # the whole body is there to be received
        self._start_asgi_task(self.cycle, self.app)

    async def _answer(self, cycle: DirectAnswer, asked: Any) -> None:
        cycle.scope["app"] = self.app
        try:
            response, correlation_id, failure = await decided(cycle.scope, _nothing_more, cycle.hot,
                                                              cycle.path_params, asked, cycle.headers)
        except Exception as exc:  # not the route's: its own errors are answered by the app's handlers
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            self._write(cycle, _SERVER_ERROR, close=True)
            return
        head = [STATUS_LINE[response.status_code]]
        if failure is not None:
            # The app's 500 answer as its ServerErrorMiddleware gives it, outside the middleware's headers; then
            # the error goes to the log and the connection closes, as uvicorn closes it after an exception.
            self.logger.error("Exception in ASGI application\n", exc_info=failure)
            added: tuple[tuple[bytes, bytes], ...] = ()
        else:
            added = (*EVERY_ANSWER_HEADERS, (b"x-request-id", correlation_id))
        for name, value in (*self.server_state.default_headers, *response.raw_headers, *added):
            head += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", bytes(response.body))
        self._write(cycle, b"".join(head), close=failure is not None or not cycle.keep_alive)
        DirectAnswers.answered_directly += 1

    def _write(self, cycle: DirectAnswer, answer: bytes, *, close: bool) -> None:
        cycle.response_started = cycle.response_complete = True
        if cycle.disconnected:
            return
        self.transport.write(answer)
        if close:
            self.transport.close()
        self.on_response_complete()
