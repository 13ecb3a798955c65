"""The gateway process: the FastAPI app (wired by boxoffice.bootstrap.gateway) and the uvicorn server."""

from __future__ import annotations

import contextlib
import inspect
import logging
import signal
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from boxoffice.bootstrap.gateway import gateway
from boxoffice.config import Settings
from boxoffice.entrypoints.gateway import (
    accounts,
    bookings,
    catalog,
    docs,
    events,
    lifecycle,
    live,
    operations,
    queue,
    telemetry,
    tickets,
    waitlist,
)
from boxoffice.entrypoints.gateway.access import document_bearer
from boxoffice.entrypoints.gateway.lean_bookings import LeanBookings
from boxoffice.entrypoints.gateway.middleware import BodySizeLimit, HeadAsGet, SecurityHeaders
from boxoffice.entrypoints.gateway.responses import install_error_handlers

# FastAPI's own OpenTelemetry hooks ask for the tracer, meter and logger providers on every request (9 % of the
# gateway's CPU under bench holds); the platform exports its own metrics (/metrics).
_NO_OPENTELEMETRY: dict[str, Any] = ({"telemetry": {"tracing": False, "metrics": False, "logs": False}}
                                     if "telemetry" in inspect.signature(FastAPI).parameters else {})


# A body sent without a Content-Type (curl's --data-binary with -H 'Content-Type:') is read as JSON, as the body
# size limit's docstring says; FastAPI otherwise leaves it unread and answers a puzzling 422.
_JSON_WITHOUT_CONTENT_TYPE: dict[str, Any] = ({"strict_content_type": False}
                                              if "strict_content_type" in inspect.signature(FastAPI).parameters else {})


class GatewayApp(FastAPI):
    """The gateway's FastAPI app, with the lean layer for holds and payments outside all its middleware."""

    lean = True  # off: every request goes through the middleware and FastAPI (the tests compare the two)
    cors: CORSMiddleware | None = None  # when configured: its `send` adds the CORS headers to the lean answers

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return LeanBookings(stack, self.cors) if self.lean else stack


def create_app(settings: Settings) -> GatewayApp:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with gateway(settings) as gw:
            app.state.gateway = gw
            yield

    app = GatewayApp(
        title="boxoffice", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Event-driven ticket booking: seats are held through Kafka and never sold twice.",
        **_NO_OPENTELEMETRY, **_JSON_WITHOUT_CONTENT_TYPE,
    )
    install_error_handlers(app)
    document_bearer(app, settings)
    app.include_router(accounts.router)
    app.include_router(bookings.router)
    app.include_router(lifecycle.router)
    app.include_router(catalog.router)
    app.include_router(events.router)
    app.include_router(queue.router)
    app.include_router(operations.router)
    app.include_router(telemetry.router)
    app.include_router(live.router)
    app.include_router(waitlist.router)
    app.include_router(tickets.router)
    docs.install(app)  # /docs, /redoc and their assets, without a CDN
    app.mount("/static", StaticFiles(directory=live.WEB_DIR), name="static")
    app.add_middleware(BodySizeLimit)
    if origins := [o.strip() for o in settings.cors_origins.split(",") if o.strip()]:
        cors: dict[str, Any] = {
            "allow_origins": origins, "allow_methods": ["GET", "POST", "PUT", "DELETE"],
            "allow_headers": ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "X-Queue-Access"],
            "expose_headers": ["Retry-After", "Server-Timing", "X-Request-ID"], "max_age": 600}
        app.add_middleware(CORSMiddleware, **cors)
        app.cors = CORSMiddleware(app.router, **cors)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(telemetry.RequestTelemetry)
    app.add_middleware(HeadAsGet)  # outermost of the middleware: everything inside answers a HEAD as its GET
    return app


def app_from_environment() -> GatewayApp:
    from boxoffice.config import get_settings
    from boxoffice.logs import configure

    settings = get_settings()
    # Worker processes are spawned without the parent's logging.
    configure("gateway", settings.log_format, logging.getLevelName(settings.log_level))
    return create_app(settings)


def serve(settings: Settings) -> None:
    """Several worker processes share the port when configured; each has its own Kafka clients."""
    import uvicorn

    from boxoffice.entrypoints.gateway.live_splice import LiveSplicingProtocol
    from boxoffice.entrypoints.gateway.websocket_refusals import JsonRefusingWebSockets

    # uvicorn stops gracefully on SIGTERM, then raises the signal again so that the process ends by it, which
    # the supervisor logs as a warning at every `down`. It raises it to the handler it found, this one.
    signal.signal(signal.SIGTERM, _exit_as_asked)
    uvicorn.run(
        "boxoffice.entrypoints.gateway.app:app_from_environment", factory=True,
        host=settings.http_host, port=settings.http_port, workers=settings.gateway_workers,
        loop="uvloop", http=LiveSplicingProtocol, ws=JsonRefusingWebSockets, access_log=False, log_level="warning",
        lifespan="on",
        log_config=None,  # uvicorn's lines go through our handler: the same format (text or JSON)
        backlog=4096, timeout_keep_alive=75,
        # A client's address is the connection's unless a trusted proxy forwards it (per-address limits).
        proxy_headers=bool(trusted_proxies(settings)), forwarded_allow_ips=trusted_proxies(settings) or None,
    )


def _exit_as_asked(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def trusted_proxies(settings: Settings) -> list[str]:
    return [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
