"""The payment service: charges through the configured provider and reports the outcome."""

from __future__ import annotations

from boxoffice import bootstrap
from boxoffice import messages as topics
from boxoffice.config import Settings


async def main(settings: Settings) -> None:
    async with bootstrap.runtime(settings, "payment", produces=True, pool_size=6) as rt:
        handler, relay = bootstrap.payment_service(rt)
        await bootstrap.run_consumer_service(
            rt, [topics.PAYMENT_REQUESTED], handler, extra=[relay.run()],
            info=lambda: {"charged": handler.charged, "published": relay.published},
        )
