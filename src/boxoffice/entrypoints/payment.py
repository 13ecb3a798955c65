"""The payment service: charges through the configured provider and reports the outcome."""

from __future__ import annotations

from boxoffice import bootstrap
from boxoffice.bootstrap import payment
from boxoffice.config import Settings


async def main(settings: Settings) -> None:
    async with bootstrap.runtime(settings, "payment", produces=True, pool_size=6) as rt:
        await payment.serve(rt)
