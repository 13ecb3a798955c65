"""POST /bookings and PUT /bookings/{id}/confirm without FastAPI's routing and dependency solving, and without the
middleware stack, for the requests it is sure about.

Measured under `boxoffice bench holds`, about a third of the gateway's CPU per hold went to FastAPI itself:
routing, dependency solving, its body parsing (json, then a TypeAdapter), its exit stacks and exception
middlewares; of what was left, about a tenth went through the middleware layers and their wrapped `send`s. A hold
is the on-sale's hot route, so this layer, outside all the others, answers a well-formed one directly, and so it
does a payment (checkout's hot route): the body is validated by the same model, the caller is found by the same
dependency functions, and the route function itself decides, so the answers are the route's. What the middleware
adds to such an answer it adds too: the security headers, the X-Request-ID, the request's metrics and, when CORS is
configured, the CORS headers (through the CORS middleware's own `send`). An ApiError
(or anything else the app has a handler for) is answered by the app's own handler; any other exception gets the
app's 500 answer and goes on to the server's log, as from Starlette's ServerErrorMiddleware.

Anything it is not sure about (no JSON content type, a query string, a body or a header that fails validation, a
repeated header, a body without a Content-Length, over the limit or in a content coding) goes on to the app with
the body replayed, which answers as it always did. The routes stay registered there for that, and for the OpenAPI
schema.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxoffice.entrypoints.gateway import lifecycle, telemetry
from boxoffice.entrypoints.gateway.bookings import create_booking, router
from boxoffice.entrypoints.gateway.deps import bearer, buying_caller, get_gateway, limited_caller
from boxoffice.entrypoints.gateway.lifecycle import confirm_booking
from boxoffice.entrypoints.gateway.middleware import EVERY_ANSWER_HEADERS, MAX_BODY_BYTES
from boxoffice.entrypoints.gateway.schemas import BookingRequest, ConfirmRequest
from boxoffice.logs import CORRELATION_ID

# The headers each route declares, with their limits (Header(max_length=...) in bookings.create_booking).
_HOLD_HEADERS = {b"idempotency-key": 255, b"x-queue-access": 2048}
_CONFIRM_HEADERS: dict[bytes, int] = {}
# The routes as FastAPI's router puts them in scope["route"] (the metrics label requests by their path).
_ROUTE = next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is create_booking)
_CONFIRM_ROUTE = next(r for r in lifecycle.router.routes if isinstance(r, APIRoute) and r.endpoint is confirm_booking)
# The confirm route's path parameter as Starlette matches it, and its limit (BookingPath in lifecycle.py).
_CONFIRM_PATH = re.compile(r"/bookings/([^/]+)/confirm")
_BOOKING_ID_LIMIT = 64


class LeanBookings:
    """`app` is the whole middleware stack (FastAPI's build_middleware_stack); `cors`: the CORS middleware as
    configured, whose `send` adds its headers to the answers given here."""

    def __init__(self, app: ASGIApp, cors: CORSMiddleware | None = None) -> None:
        self.app = app
        self.cors = cors
        # How many holds were answered here, and how many POST /bookings went on to FastAPI.
        self.answered = 0
        self.passed_on = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/bookings" and method == "POST":
            await self._lean(scope, receive, send, BookingRequest, _ROUTE, {}, _HOLD_HEADERS, self._hold)
            return
        if method == "PUT" and (match := _CONFIRM_PATH.fullmatch(path)) and len(match[1]) <= _BOOKING_ID_LIMIT:
            await self._lean(scope, receive, send, ConfirmRequest, _CONFIRM_ROUTE, {"booking_id": match[1]},
                             _CONFIRM_HEADERS, self._confirm)
            return
        await self.app(scope, receive, send)

    async def _lean(self, scope: Scope, receive: Receive, send: Send, model: type[BookingRequest | ConfirmRequest],
                    route: APIRoute, path_params: dict[str, str], declared: dict[bytes, int],
                    decide: Callable[[Request, Any, dict[bytes, str]], Awaitable[Response]]) -> None:
        started = time.perf_counter()
        headers = _declared_headers(scope, declared)
        content_type = headers.pop(b"content-type", None) if headers is not None else None
        if (headers is None or content_type is None or content_type.split(";")[0].strip().lower() != "application/json"
                or scope["query_string"] or scope.get("root_path")):
            self.passed_on += 1
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        body = b""
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return received.pop(0) if received else await receive()

        try:
            asked = model.model_validate_json(body) if received[-1]["type"] == "http.request" else None
        except ValidationError:
            asked = None
        if asked is None:
            self.passed_on += 1
            await self.app(scope, replay, send)
            return
        scope["route"], scope["endpoint"], scope["path_params"] = route, route.endpoint, path_params  # as routed
        correlation_id = telemetry.correlation_id_of(headers.pop(b"x-request-id", "").encode("latin-1") or None)
        correlation = CORRELATION_ID.set(correlation_id)
        request = Request(scope, replay)
        try:
            response = await decide(request, asked, headers)
        except Exception as exc:
            handled = await _handled(request, exc)
            if handled is None:
                # As Starlette's ServerErrorMiddleware: the app's 500 answer, then on to the server's log (the
                # correlation id stays set for it).
                telemetry.observe(scope, 500, started)
                await (await _server_error(request, exc))(scope, receive, send)
                raise
            response = handled
        self.answered += 1
        telemetry.observe(scope, response.status_code, started)
        if self.cors is not None:
            send = functools.partial(self.cors.send, send=send, request_headers=Headers(scope=scope))
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [*response.raw_headers, *EVERY_ANSWER_HEADERS,
                                (b"x-request-id", correlation_id.encode())]})
        await send({"type": "http.response.body", "body": response.body})
        CORRELATION_ID.reset(correlation)

    @staticmethod
    async def _hold(request: Request, booking: BookingRequest, headers: dict[bytes, str]) -> Response:
        gw = await get_gateway(request)
        caller = await buying_caller(request, gw, await bearer(request))
        return await create_booking(booking, gw, caller, headers.get(b"idempotency-key"),
                                    headers.get(b"x-queue-access"))

    @staticmethod
    async def _confirm(request: Request, payment: ConfirmRequest, headers: dict[bytes, str]) -> Response:
        gw = await get_gateway(request)
        caller = await limited_caller(request, gw, await bearer(request))
        return await confirm_booking(request.path_params["booking_id"], payment, gw, caller)


def _declared_headers(scope: Scope, declared: dict[bytes, int]) -> dict[bytes, str] | None:
    """Content-Type, X-Request-ID and the route's `declared` headers, decoded as Starlette does; None if one is
    repeated or over its limit, or if the body is one for the middleware: without a Content-Length, over the limit
    or in a content coding."""
    found: dict[bytes, str] = {}
    length = -1
    for name, value in scope["headers"]:
        if name == b"content-type" or name == b"x-request-id" or name in declared:
            text = value.decode("latin-1")
            if name in found or len(text) > declared.get(name, len(text)):
                return None
            found[name] = text
        elif name == b"content-length":
            if length >= 0 or not value.isdigit():
                return None
            length = int(value)
        elif name == b"transfer-encoding" or name == b"content-encoding":
            return None
    return found if 0 <= length <= MAX_BODY_BYTES else None


async def _handled(request: Request, exc: Exception) -> Response | None:
    """The answer of the app's own handler for `exc`, looked up as Starlette's ExceptionMiddleware does; None
    when only the handler of Exception (or of 500) has it: that one belongs to ServerErrorMiddleware outside."""
    handlers: dict[Any, Any] = request.app.exception_handlers
    handler = handlers.get(exc.status_code) if isinstance(exc, HTTPException) and exc.status_code != 500 else None
    if handler is None:
        handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers and c is not Exception), None)
    if handler is None:
        return None
    return await _call(handler, request, exc)


async def _server_error(request: Request, exc: Exception) -> Response:
    """The answer of the app's handler of Exception (or of 500)."""
    handlers: dict[Any, Any] = request.app.exception_handlers
    return await _call(handlers.get(Exception) or handlers[500], request, exc)


async def _call(handler: Any, request: Request, exc: Exception) -> Response:
    if inspect.iscoroutinefunction(handler):
        return await handler(request, exc)  # type: ignore[no-any-return]
    return await run_in_threadpool(handler, request, exc)
