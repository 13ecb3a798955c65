"""The gateway's memory of waiting rooms: a crowd finding it stale together asks the database once; an "auto"
room's watchers get a wait estimated from the last minute's admissions (as the database counts them)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg

from boxoffice import messages as topics
from boxoffice.adapters.queue_tokens import QueueTokens
from boxoffice.entrypoints.gateway.queue_watch import QueueWatch, Watcher
from boxoffice.messages import Message


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


class AutoRoomPool:
    """An "auto" room serving position 10, with 30 admitted in the last minute."""

    async def fetchrow(self, query: str, event_id: str) -> dict[str, Any]:
        return {"event_id": event_id, "enabled": True, "serving_position": 10, "admit_per_minute": None,
                "admission_minutes": 10, "opens_at": datetime(2030, 1, 1, 9, tzinfo=UTC),
                "opened_at": datetime(2030, 1, 1, 9, tzinfo=UTC), "last_minute": 30}


async def test_an_auto_rooms_watchers_are_told_a_wait_from_the_last_minutes_admissions() -> None:
    watch = QueueWatch(cast(asyncpg.Pool, AutoRoomPool()), QueueTokens("k" * 32))
    waiting = Watcher("ev_auto", "q" * 43, "fan", 20, None)
    watch.watch(waiting)
    await watch.moved(Message(topics.QUEUE_ADMITTED, "ev_auto", {
        "servingPosition": 10, "queueSize": 40, "opened": True, "admitPerMinute": "auto", "admissionMinutes": 10,
        "opensAt": "2030-01-01T09:00:00+00:00", "at": "2030-01-01T09:00:01+00:00", "firstPosition": 1,
        "lastPosition": 10, "admittedLastMinute": 30}))
    pushed = waiting.updates.get_nowait()
    assert (pushed["status"], pushed["ahead"], pushed["estimatedWaitSeconds"]) == ("waiting", 9, 20)
