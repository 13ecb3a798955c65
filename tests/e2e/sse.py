"""A Server-Sent Events reader for the tests: what a browser's EventSource would receive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson


class LiveStream:
    def __init__(self, client: httpx.AsyncClient, event_id: str, last_event_id: int | None = None) -> None:
        self._client, self._event_id, self._last = client, event_id, last_event_id
        self.messages: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Condition()

    async def __aenter__(self) -> LiveStream:
        self._task = asyncio.create_task(self._read())
        await self.wait_for(lambda ms: len(ms) >= 1)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        headers = {"Last-Event-ID": str(self._last)} if self._last is not None else {}
        async with self._client.stream("GET", f"/events/{self._event_id}/live", headers=headers) as response:
            assert response.status_code == 200
            async for frame in _frames(response):
                async with self._arrived:
                    self.messages.append(frame)
                    self._arrived.notify_all()

    async def wait_for(self, condition, timeout: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: condition(self.messages))
        return self.messages

    def seat_map(self) -> dict[str, str]:
        """The seat map this browser would draw: the last snapshot plus the changes after it."""
        shown: dict[str, str] = {}
        status = {"seat.reserved": "RESERVED", "seat.released": "AVAILABLE", "seat.booked": "BOOKED"}
        for message in self.messages:
            if message["type"] == "snapshot":
                shown = {s["seatId"]: s["status"] for s in message["seats"]}
            else:
                shown.update({seat: status[message["type"]] for seat in message["seatIds"]})
        return shown


async def _frames(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and data:
            yield orjson.loads("\n".join(data))
            data = []
