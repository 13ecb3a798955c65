"""The gateway's memory of waiting rooms: a crowd finding it stale together asks the database once."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import asyncpg

from boxoffice.adapters.queue_tokens import QueueTokens
from boxoffice.entrypoints.gateway.queue_watch import QueueWatch


class SlowPool:
    """Answers `fetchrow` once released, counting the queries; no room for any event."""

    def __init__(self) -> None:
        self.queries = 0
        self.release = asyncio.Event()

    async def fetchrow(self, query: str, *args: Any) -> None:
        self.queries += 1
        await self.release.wait()


async def test_a_crowd_finding_the_room_unread_asks_the_database_once() -> None:
    pool = SlowPool()
    watch = QueueWatch(cast(asyncpg.Pool, pool), QueueTokens("k" * 32))
    crowd = [asyncio.create_task(watch.room("ev_rush")) for _ in range(200)]
    other = asyncio.create_task(watch.room("ev_other"))
    await asyncio.sleep(0)
    pool.release.set()
    assert await asyncio.gather(*crowd, other) == [None] * 201
    assert pool.queries == 2  # one per event
    assert await watch.room("ev_rush") is None and pool.queries == 2  # fresh: from memory
