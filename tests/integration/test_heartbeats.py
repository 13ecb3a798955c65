"""Heartbeat rows as the gateway and `boxoffice status` read them: up, down, and degraded while a consumer
is stuck retrying (the consumer loop reports `retryingForSeconds` and `lastError` in its heartbeat info)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson

from boxoffice.adapters.heartbeat import read_heartbeats


async def beat(pool: asyncpg.Pool, service: str, instance: str, seconds_ago: float, **info: Any) -> None:
    await pool.execute(
        """INSERT INTO service_heartbeats (service, instance, pid, started_at, beat_at, info)
           VALUES ($1, $2, $3, now() - interval '1 hour', now() - make_interval(secs => $4), $5::jsonb)""",
        service, instance, int(instance.rpartition(":")[2]), seconds_ago, orjson.dumps(info).decode())


async def test_statuses_from_heartbeat_rows(pool: asyncpg.Pool) -> None:
    names = {kind: f"{kind}_{uuid.uuid4().hex[:8]}" for kind in ("fine", "stuck", "brief", "gone", "pair")}
    await beat(pool, names["fine"], "h:1", 0.2, lag=0, retryingForSeconds=0)
    await beat(pool, names["stuck"], "h:2", 0.3, lag=7, retryingForSeconds=12,
               lastError="UndefinedColumnError('column \"x\" does not exist')")
    await beat(pool, names["brief"], "h:3", 0.3, retryingForSeconds=2.5, lastError="TimeoutError()")
    await beat(pool, names["gone"], "h:4", 30.0, retryingForSeconds=40, lastError="old news")
    # Of two processes, the one that beat last is fine, the other stuck: the service is degraded.
    await beat(pool, names["pair"], "h:5", 0.1, retryingForSeconds=0)
    await beat(pool, names["pair"], "h:6", 0.6, retryingForSeconds=15.5, lastError="DeadlockDetectedError()")
    await beat(pool, names["pair"], "h:7", 40.0, retryingForSeconds=99, lastError="a process long gone")

    read = await read_heartbeats(pool, 5.0)
    shown = {kind: read[name] for kind, name in names.items()}
    assert {kind: s["status"] for kind, s in shown.items()} == {
        "fine": "up", "stuck": "degraded", "brief": "up", "gone": "down", "pair": "degraded"}
    assert shown["stuck"]["lastError"] == "UndefinedColumnError('column \"x\" does not exist')"
    assert shown["stuck"]["lag"] == 7 and shown["stuck"]["pid"] == 2
    assert shown["pair"]["pid"] == 5 and shown["pair"]["instances"] == 2  # the freshest, and two beating
    assert shown["pair"]["retryingForSeconds"] == 15.5 and shown["pair"]["lastError"] == "DeadlockDetectedError()"
    assert 29 < shown["gone"]["lastHeartbeatSecondsAgo"] < 40


async def test_a_process_that_stops_cleanly_says_so_and_its_service_is_down_unless_another_beats(
        pool: asyncpg.Pool) -> None:
    import asyncio

    from boxoffice.adapters.heartbeat import beat_forever, heartbeat_age, instance_name, stopped_since

    alone, paired = f"alone_{uuid.uuid4().hex[:8]}", f"paired_{uuid.uuid4().hex[:8]}"
    await beat(pool, paired, "h:9", 0.2)  # another process of the second service, still beating
    for service in (alone, paired):
        beating = asyncio.ensure_future(beat_forever(pool, service, 0.05))
        while await pool.fetchval("SELECT count(*) FROM service_heartbeats WHERE service = $1 AND instance = $2",
                                  service, instance_name()) == 0:
            await asyncio.sleep(0.02)
        assert (await read_heartbeats(pool, 5.0))[service]["status"] == "up"
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)

    read = await read_heartbeats(pool, 5.0)
    assert read[alone]["status"] == "down" and read[alone]["instances"] == 0
    assert read[paired]["status"] == "up" and read[paired]["instances"] == 1 and read[paired]["pid"] == 9
    async with pool.acquire() as con:
        assert await heartbeat_age(con, alone) is None
        assert 0 <= (await stopped_since(con, alone) or -1) < 5
        assert await heartbeat_age(con, paired) is not None
