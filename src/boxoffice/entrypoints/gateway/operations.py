"""Health of the gateway and of every service behind it."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.responses import Response

from boxoffice.config import SERVICES
from boxoffice.entrypoints.gateway.deps import GatewayDep
from boxoffice.entrypoints.gateway.responses import JSON

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health(gw: GatewayDep) -> Response:
    """The gateway's own health, and each service's last heartbeat ("up" when recent enough)."""
    database = "up"
    try:
        await gw.pool.fetchval("SELECT 1")
    except Exception:  # noqa: BLE001 - reported, not raised
        database = "down"
    services = {name: gw.health.services.get(name, {"status": "down"}) for name in SERVICES if name != "gateway"}
    services["gateway"] = {"status": "up"}
    healthy = database == "up" and all(s["status"] == "up" for s in services.values())
    return JSON({
        "status": "ok" if healthy else "degraded", "database": database, "services": services,
        "heartbeatsAgeSeconds": round(time.monotonic() - gw.health.refreshed_at, 3) if gw.health.refreshed_at
        else None,
    })
