"""Each service instance writes a heartbeat row every second; the gateway and the CLI read them.

The row's `info` carries the instance's figures (consumer lag, ...) and, under "metrics", its counters
(boxoffice/metrics.py), which the gateway exposes at GET /metrics. A consumer stuck on one batch reports
`retryingForSeconds` (0 when it is getting on) and, while retrying, `lastError`: retrying for longer than
`DEGRADED_AFTER_RETRYING_SECONDS` makes its service "degraded" rather than "up"."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from boxoffice import metrics
from boxoffice.adapters.postgres import TRANSIENT_ERRORS, Connection
from boxoffice.logs import Outage
from boxoffice.messages import utc_now

log = logging.getLogger(__name__)

InfoSource = Callable[[], Awaitable[dict[str, Any]]]

DEGRADED_AFTER_RETRYING_SECONDS = 10.0
STOPPED_SAID_WITHIN_SECONDS = 2.0


def retrying_for(info: Mapping[str, Any]) -> float:
    """Seconds the instance has been retrying one batch (0 when it is getting on or does not say)."""
    value = info.get("retryingForSeconds")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def beat_status(age: float, stale_after: float, info: Mapping[str, Any]) -> str:
    """"up", "degraded" (beating, but stuck retrying) or "down" (no recent heartbeat, or stopped)."""
    if age > stale_after or stopped(info):
        return "down"
    return "degraded" if retrying_for(info) > DEGRADED_AFTER_RETRYING_SECONDS else "up"


def stopped(info: Mapping[str, Any]) -> bool:
    """Whether the instance said, as it stopped cleanly, that it serves no more."""
    return info.get("stopped") is True


def instance_name() -> str:
    """This process: a restarted service is a new instance, whose counters start from zero."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def beat_forever(pool: asyncpg.Pool, service: str, every: float, info: InfoSource | None = None) -> None:
    instance = instance_name()
    started: datetime = utc_now()
    outage = Outage(log, "writing the heartbeat")
    try:
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
                outage.failed(exc)
            else:
                outage.recovered()
            await asyncio.sleep(every)
    finally:
        await _say_stopped(pool, service, instance)


async def _say_stopped(pool: asyncpg.Pool, service: str, instance: str) -> None:
    """A process that stops cleanly is down at once, not only once its last heartbeat is stale (`health` and the
    gateway said it up for seconds after a stop). Its last figures stay; a killed process cannot say so."""
    try:
        async with asyncio.timeout(STOPPED_SAID_WITHIN_SECONDS):
            await pool.execute(
                """UPDATE service_heartbeats SET beat_at = now(), info = info || '{"stopped": true}'::jsonb
                   WHERE service = $1 AND instance = $2""", service, instance)
    except TRANSIENT_ERRORS as exc:  # the pool closing or gone, the database down, no answer in time
        log.info("could not record that %s stopped (%s): it shows as down once its heartbeat is stale",
                 service, type(exc).__name__)


async def read_heartbeats(db: asyncpg.Pool | Connection, stale_after: float) -> dict[str, dict[str, Any]]:
    """The freshest heartbeat per service (without the counters), with its status and how many of its
    processes beat recently (several booking processes share its work). When one of those processes is
    stuck retrying, the service shows the longest `retryingForSeconds` among them and that process's
    `lastError`: one stuck process stalls its share of the work."""
    rows = await db.fetch(
        """SELECT service, instance, pid, started_at, info - 'metrics' AS info,
                  extract(epoch FROM now() - beat_at) AS age
           FROM service_heartbeats ORDER BY service, info @> '{"stopped": true}', beat_at DESC""")
    services: dict[str, dict[str, Any]] = {}
    for r in rows:
        info, age = orjson.loads(r["info"]), float(r["age"])
        known = services.get(r["service"])
        if known is None:
            services[r["service"]] = {
                "pid": r["pid"], "instance": r["instance"], "startedAt": r["started_at"].isoformat(),
                "lastHeartbeatSecondsAgo": round(age, 3), "instances": int(age <= stale_after and not stopped(info)),
                **info}
            continue
        if age <= stale_after and not stopped(info):
            known["instances"] += 1
            if retrying_for(info) > retrying_for(known):
                known["retryingForSeconds"] = info["retryingForSeconds"]
                known["lastError"] = info.get("lastError")
    return {name: {"status": beat_status(s["lastHeartbeatSecondsAgo"], stale_after, s), **s}
            for name, s in services.items()}


async def heartbeat_age(con: asyncpg.Connection, service: str, host: str | None = None) -> float | None:
    """Seconds since the service's freshest heartbeat, only counting processes on `host` when given
    (a container's health check asks about its own process) and not those that said they stopped; None when
    there is none."""
    age = await con.fetchval(
        """SELECT extract(epoch FROM now() - max(beat_at)) FROM service_heartbeats
           WHERE service = $1 AND ($2::text IS NULL OR split_part(instance, ':', 1) = $2)
             AND NOT info @> '{"stopped": true}'""", service, host)
    return None if age is None else float(age)


async def stopped_since(con: asyncpg.Connection, service: str, host: str | None = None) -> float | None:
    """Seconds since the service's last process on `host` (any when None) said it stopped; None if none did."""
    age = await con.fetchval(
        """SELECT extract(epoch FROM now() - max(beat_at)) FROM service_heartbeats
           WHERE service = $1 AND ($2::text IS NULL OR split_part(instance, ':', 1) = $2)
             AND info @> '{"stopped": true}'""", service, host)
    return None if age is None else float(age)


async def read_instances(db: asyncpg.Pool | Connection) -> list[dict[str, Any]]:
    """Every instance's last heartbeat, with its counters: what GET /metrics renders."""
    rows = await db.fetch(
        """SELECT service, instance, started_at, info, extract(epoch FROM now() - beat_at) AS age
           FROM service_heartbeats ORDER BY service, instance""")
    return [{"service": r["service"], "instance": r["instance"], "startedAt": r["started_at"].timestamp(),
             "age": float(r["age"]), "info": orjson.loads(r["info"])} for r in rows]
