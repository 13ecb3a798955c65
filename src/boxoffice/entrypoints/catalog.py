"""The catalog service: events, seat maps and live availability counts."""

from __future__ import annotations

from boxoffice import bootstrap
from boxoffice.bootstrap import catalog
from boxoffice.config import Settings


async def main(settings: Settings) -> None:
    async with bootstrap.runtime(settings, "catalog", produces=False, pool_size=3) as rt:
        await catalog.serve(rt)
