"""`boxoffice service NAME`: runs one service in this process until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from boxoffice import logs
from boxoffice.bootstrap import STOP_GRACE_SECONDS
from boxoffice.config import Settings, get_settings


def configure_logging(service: str, log_format: str = "text", level: str = "INFO") -> None:
    """Text lines by default; one JSON object per line with BOXOFFICE_LOG_FORMAT=json (boxoffice/logs.py)."""
    logs.configure(service, log_format, logging.getLevelName(level))


async def _main(service: str, settings: Settings) -> None:
    import importlib

    # Each service is a module of its own under entrypoints with `main(settings)`.
    work = importlib.import_module(f"boxoffice.entrypoints.{service}").main(settings)
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if task.cancelling():
            os._exit(1)  # a second signal: stop now
        task.cancel()
        # Clean-up talks to the broker and the database; a blinked dependency must not keep us alive.
        loop.call_later(STOP_GRACE_SECONDS, _give_up, task)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _give_up(task: asyncio.Task[None]) -> None:
    log = logging.getLogger("boxoffice.service")
    log.error("clean stop took longer than %.0f s; exiting. Pending work:", STOP_GRACE_SECONDS)
    for pending in asyncio.all_tasks():
        pending.print_stack(limit=8, file=sys.stderr)
    os._exit(1)


def lower_priority(increment: int) -> None:
    """Lowers this process's CPU priority by `increment` (where the system has priorities)."""
    if increment and hasattr(os, "nice"):
        os.nice(increment)


def run(service: str) -> None:
    import gc

    # Services allocate many short-lived objects per message; the default collector thresholds made the
    # realtime fan-out spend a quarter of its time in garbage collection.
    gc.set_threshold(50_000, 20, 100)
    settings = get_settings()
    configure_logging(service, settings.log_format, settings.log_level)
    if not settings.kafka_bootstrap or not settings.database_url:
        sys.exit("BOXOFFICE_KAFKA_BOOTSTRAP and BOXOFFICE_DATABASE_URL must be set")
    if service == "notification":
        lower_priority(settings.notification_nice)
    if service == "gateway":  # uvicorn runs its own loop, signal handling and worker processes
        from boxoffice.entrypoints.gateway.app import serve

        serve(settings)
        return
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(_main(service, settings))
