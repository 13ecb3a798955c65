"""`boxoffice service NAME`: runs one service in this process until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from boxoffice.config import Settings, get_settings


def configure_logging(service: str) -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format=f"%(asctime)s {service}[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


async def _main(service: str, settings: Settings) -> None:
    if service == "booking":
        from boxoffice.entrypoints import booking

        work = booking.main(settings)
    elif service == "payment":
        from boxoffice.entrypoints import payment

        work = payment.main(settings)
    elif service == "catalog":
        from boxoffice.entrypoints import catalog

        work = catalog.main(settings)
    elif service == "notification":
        from boxoffice.entrypoints import notification

        work = notification.main(settings)
    else:
        from boxoffice.entrypoints import observers

        work = observers.main(settings, service)
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


def run(service: str) -> None:
    configure_logging(service)
    settings = get_settings()
    if not settings.kafka_bootstrap or not settings.database_url:
        sys.exit("BOXOFFICE_KAFKA_BOOTSTRAP and BOXOFFICE_DATABASE_URL must be set (boxoffice up sets them)")
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
