"""The waitingroom service: places visitors in Kafka order, draws the opening's order, meters admissions."""

from __future__ import annotations

from boxoffice import bootstrap
from boxoffice.bootstrap import waitingroom
from boxoffice.config import Settings


async def main(settings: Settings) -> None:
    async with bootstrap.runtime(settings, "waitingroom", produces=True, pool_size=3) as rt:
        await waitingroom.serve(rt)
