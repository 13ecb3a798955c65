"""Health of the gateway and of every service behind it."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.responses import Response

from boxoffice.adapters.kafka import accepts_connections
from boxoffice.config import SERVICES
from boxoffice.entrypoints.gateway.deps import GatewayDep
from boxoffice.entrypoints.gateway.responses import JSON

router = APIRouter(tags=["operations"])

# A database that does not answer this fast is reported down: /health itself must answer promptly.
DATABASE_CHECK_SECONDS = 2.0
KAFKA_CHECK_SECONDS = 1.0


@router.get("/health")
async def health(gw: GatewayDep) -> Response:
    """The gateway's own health, the database's, Kafka's (whether a broker takes the gateway's connections), and
    each service's status from its last heartbeat: "up", "degraded" (beating but stuck retrying), "down" (no
    recent heartbeat) or "unknown" (the heartbeats could not be read lately). `status` is "ok" only when the
    database, Kafka and every service are up."""
    database = "up"
    try:
        async with asyncio.timeout(DATABASE_CHECK_SECONDS):
            await gw.pool.fetchval("SELECT 1")
    except Exception:  # noqa: BLE001 - reported, not raised
        database = "down"
    kafka = "up" if await accepts_connections(gw.settings.kafka_bootstrap or "", KAFKA_CHECK_SECONDS) else "down"
    services = {name: gw.health.report(name) for name in SERVICES if name != "gateway"}
    services["gateway"] = {"status": "up"}
    healthy = database == "up" and kafka == "up" and all(s["status"] == "up" for s in services.values())
    return JSON({
        "status": "ok" if healthy else "degraded", "database": database, "kafka": kafka, "services": services,
        "heartbeatsAgeSeconds": round(gw.health.clock() - gw.health.refreshed_at, 3) if gw.health.refreshed_at
        else None,
    })
