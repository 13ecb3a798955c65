"""Each service instance writes a heartbeat row every second; the gateway and the CLI read them.

The row's `info` carries the instance's figures (consumer lag, ...) and, under "metrics", its counters
(boxoffice/metrics.py), which the gateway exposes at GET /metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from boxoffice import metrics
from boxoffice.adapters.postgres import TRANSIENT_ERRORS
from boxoffice.messages import utc_now

log = logging.getLogger(__name__)

InfoSource = Callable[[], Awaitable[dict[str, Any]]]


def instance_name() -> str:
    """This process: a restarted service is a new instance, whose counters start from zero."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def beat_forever(pool: asyncpg.Pool, service: str, every: float, info: InfoSource | None = None) -> None:
    instance = instance_name()
    started: datetime = utc_now()
    while True:
        try:
            details = {**(await info() if info else {}), "metrics": metrics.snapshot()}
            await pool.execute(
                """INSERT INTO service_heartbeats (service, instance, pid, started_at, beat_at, info)
                   VALUES ($1, $2, $3, $4, now(), $5::jsonb)
                   ON CONFLICT (service, instance) DO UPDATE SET beat_at = now(), info = EXCLUDED.info""",
                service, instance, os.getpid(), started, orjson.dumps(details).decode(),
            )
            # Rows of earlier processes of this service stop mattering once this one beats.
            await pool.execute(
                "DELETE FROM service_heartbeats WHERE service = $1 AND instance <> $2 "
                "AND beat_at < now() - interval '1 minute'", service, instance)
        except TRANSIENT_ERRORS as exc:
            log.warning("heartbeat not written: %r", exc)
        await asyncio.sleep(every)


async def read_heartbeats(pool: asyncpg.Pool, stale_after: float) -> dict[str, dict[str, Any]]:
    """The freshest heartbeat per service, with whether it counts as up (without the counters), and how
    many of its processes beat recently (several booking processes share its work)."""
    rows = await pool.fetch(
        """SELECT DISTINCT ON (service) service, instance, pid, started_at, beat_at, info - 'metrics' AS info,
                  extract(epoch FROM now() - beat_at) AS age,
                  count(*) FILTER (WHERE beat_at >= now() - make_interval(secs => $1)) OVER (PARTITION BY service)
                      AS instances
           FROM service_heartbeats ORDER BY service, beat_at DESC""", stale_after)
    return {
        r["service"]: {
            "status": "up" if r["age"] <= stale_after else "down",
            "pid": r["pid"], "instance": r["instance"], "startedAt": r["started_at"].isoformat(),
            "lastHeartbeatSecondsAgo": round(float(r["age"]), 3), "instances": r["instances"],
            **orjson.loads(r["info"]),
        }
        for r in rows
    }


async def heartbeat_age(con: asyncpg.Connection, service: str, host: str | None = None) -> float | None:
    """Seconds since the service's freshest heartbeat, only counting processes on `host` when given
    (a container's health check asks about its own process); None when none was ever written."""
    age = await con.fetchval(
        """SELECT extract(epoch FROM now() - max(beat_at)) FROM service_heartbeats
           WHERE service = $1 AND ($2::text IS NULL OR split_part(instance, ':', 1) = $2)""", service, host)
    return None if age is None else float(age)


async def read_instances(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every instance's last heartbeat, with its counters: what GET /metrics renders."""
    rows = await pool.fetch(
        """SELECT service, instance, started_at, info, extract(epoch FROM now() - beat_at) AS age
           FROM service_heartbeats ORDER BY service, instance""")
    return [{"service": r["service"], "instance": r["instance"], "startedAt": r["started_at"].timestamp(),
             "age": float(r["age"]), "info": orjson.loads(r["info"])} for r in rows]
