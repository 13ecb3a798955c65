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
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
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
from boxoffice.entrypoints.gateway.state import Gateway
from boxoffice.logs import CORRELATION_ID

# The headers each route declares, with their limits (Header(max_length=...) in bookings.create_booking).
_HOLD_HEADERS = {b"idempotency-key": 255, b"x-queue-access": 2048}
_CONFIRM_HEADERS: dict[bytes, int] = {}
# The confirm route's path parameter as Starlette matches it, and its limit (BookingPath in lifecycle.py).
_CONFIRM_PATH = re.compile(r"/bookings/([^/]+)/confirm")
_BOOKING_ID_LIMIT = 64


async def _credentials(request: Request, gw: Gateway) -> HTTPAuthorizationCredentials | None:
    # Without accounts no caller is looked for (deps.optional_caller): the header is not read.
    return await bearer(request) if gw.settings.auth_on else None


async def _hold(request: Request, booking: BookingRequest, headers: dict[bytes, str]) -> Response:
    gw = await get_gateway(request)
    caller = await buying_caller(request, gw, await _credentials(request, gw))
    return await create_booking(booking, gw, caller, headers.get(b"idempotency-key"), headers.get(b"x-queue-access"))


async def _confirm(request: Request, payment: ConfirmRequest, headers: dict[bytes, str]) -> Response:
    gw = await get_gateway(request)
    caller = await limited_caller(request, gw, await _credentials(request, gw))
    return await confirm_booking(request.path_params["booking_id"], payment, gw, caller)


def _route_of(router: Any, endpoint: Callable[..., Any]) -> APIRoute:
    """The route as FastAPI's router puts it in scope["route"] (the metrics label requests by its path)."""
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint)


@dataclass(frozen=True)
class HotRoute:
    """A route answered here: its body's model, its route, the headers it declares, and what decides."""

    model: type[BookingRequest | ConfirmRequest]
    route: APIRoute
    declared: dict[bytes, int]
    decide: Callable[[Request, Any, dict[bytes, str]], Awaitable[Response]]

    def parse(self, body: bytes) -> BookingRequest | ConfirmRequest | None:
        """The body as the route's model; None when it fails validation (the app answers it)."""
        try:
            return self.model.model_validate_json(body)
        except ValidationError:
            return None


HOLD = HotRoute(BookingRequest, _route_of(router, create_booking), _HOLD_HEADERS, _hold)
CONFIRM = HotRoute(ConfirmRequest, _route_of(lifecycle.router, confirm_booking), _CONFIRM_HEADERS, _confirm)


def hot_route(method: str, path: str) -> tuple[HotRoute, dict[str, str]] | None:
    """The hot route of a request and its path parameters; None for every other request."""
    if path == "/bookings" and method == "POST":
        return HOLD, {}
    if method == "PUT" and (match := _CONFIRM_PATH.fullmatch(path)) and len(match[1]) <= _BOOKING_ID_LIMIT:
        return CONFIRM, {"booking_id": match[1]}
    return None


def sure_headers(headers: list[tuple[bytes, bytes]], declared: dict[bytes, int]) -> dict[bytes, str] | None:
    """X-Request-ID and the route's declared headers of a request this layer is sure about: a JSON body with a
    Content-Length within the limit, in no content coding, and no header repeated or over its limit. None for
    any other."""
    found = _declared_headers(headers, declared)
    content_type = found.pop(b"content-type", None) if found is not None else None
    if content_type is None or content_type.split(";")[0].strip().lower() != "application/json":
        return None
    return found


async def decided(scope: Scope, receive: Receive, hot: HotRoute, path_params: dict[str, str], asked: Any,
                  headers: dict[bytes, str]) -> tuple[Response, bytes, Exception | None]:
    """The answer to a request that `hot` is sure about, as the route gives it, its X-Request-ID, and the
    exception when the answer is the app's 500 (it goes on to the server's log, with the correlation id still
    set). The request is counted in the metrics. `scope["app"]` is the app."""
    started = time.perf_counter()
    scope["route"], scope["endpoint"], scope["path_params"] = hot.route, hot.route.endpoint, path_params  # as routed
    correlation_id = telemetry.correlation_id_of(headers.pop(b"x-request-id", "").encode("latin-1") or None)
    correlation = CORRELATION_ID.set(correlation_id)
    request = Request(scope, receive)
    try:
        response = await hot.decide(request, asked, headers)
    except Exception as exc:  # noqa: BLE001 - the app's handlers answer it, or its 500 goes to the caller to log
        handled = await _handled(request, exc)
        if handled is None:
            # As Starlette's ServerErrorMiddleware: the app's 500 answer, then on to the server's log.
            telemetry.observe(scope, 500, started)
            return await _server_error(request, exc), correlation_id.encode(), exc
        response = handled
    telemetry.observe(scope, response.status_code, started)
    CORRELATION_ID.reset(correlation)
    return response, correlation_id.encode(), None


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
        hot = hot_route(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if hot is None:
            await self.app(scope, receive, send)
            return
        route, path_params = hot
        headers = sure_headers(scope["headers"], route.declared)
        if headers is None or scope["query_string"] or scope.get("root_path"):
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

        asked = route.parse(body) if received[-1]["type"] == "http.request" else None
        if asked is None:
            self.passed_on += 1
            await self.app(scope, replay, send)
            return
        response, correlation_id, failure = await decided(scope, replay, route, path_params, asked, headers)
        if failure is not None:
            await response(scope, receive, send)
            raise failure
        self.answered += 1
        if self.cors is not None:
            send = functools.partial(self.cors.send, send=send, request_headers=Headers(scope=scope))
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [*response.raw_headers, *EVERY_ANSWER_HEADERS, (b"x-request-id", correlation_id)]})
        await send({"type": "http.response.body", "body": response.body})


def _declared_headers(headers: list[tuple[bytes, bytes]], declared: dict[bytes, int]) -> dict[bytes, str] | None:
    """Content-Type, X-Request-ID and the route's `declared` headers, decoded as Starlette does; None if one is
    repeated or over its limit, or if the body is one for the middleware: without a Content-Length, over the limit
    or in a content coding."""
    found: dict[bytes, str] = {}
    length = -1
    for name, value in headers:
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
