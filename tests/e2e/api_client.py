"""What the e2e tests know of the platform: its HTTP API, nothing else."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx


def book(client: httpx.AsyncClient, event_id: str, seats: list[str], user: str, **headers: str):
    return client.post("/bookings", json={"eventId": event_id, "seatIds": seats, "userId": user},
                       headers=headers)


async def seat_statuses(client: httpx.AsyncClient, event_id: str) -> dict[str, str]:
    response = await client.get(f"/events/{event_id}/seats")
    assert response.status_code == 200
    return {s["seatId"]: s["status"] for s in response.json()}


async def wait_for(check: Any, timeout: float = 15.0, every: float = 0.1) -> Any:
    """Polls an async check until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(every)
