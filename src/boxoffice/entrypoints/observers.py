"""Realtime: a consumer of its topics, with heartbeats.

Its work on each message (pushes to browsers) comes with the live-update feature; until then it consumes,
counts and acknowledges, so the topology and its health are complete.
"""

from __future__ import annotations

import logging
from collections import Counter

from boxoffice import bootstrap
from boxoffice import messages as topics
from boxoffice.config import Settings
from boxoffice.messages import Message

TOPICS = {
    "realtime": [topics.SEAT_RESERVED, topics.SEAT_RELEASED, topics.BOOKING_CONFIRMED],
}


class MessageCounter:
    def __init__(self, service: str) -> None:
        self.seen: Counter[str] = Counter()
        self._log = logging.getLogger(f"boxoffice.{service}")

    async def __call__(self, batch: list[Message]) -> None:
        for message in batch:
            self.seen[message.type] += 1
            self._log.debug("%s %s for event %s", message.type, message.id, message.event_id)


async def main(settings: Settings, service: str) -> None:
    async with bootstrap.runtime(settings, service, produces=False, pool_size=2) as rt:
        counter = MessageCounter(service)
        await bootstrap.run_consumer_service(rt, TOPICS[service], counter, info=lambda: {"seen": dict(counter.seen)},
                                             latency_path=False)
