"""The waiting room chaos bench's own waits end: the organiser's opening survives a gateway killed under it, and
gives up with a reason; the traffic's parts end together, with a reason if one does not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from boxoffice.bench.faults import ChaosError
from boxoffice.bench.queue_chaos import QueueJournal, _open, _together

EVENT = "evt_opening"


class FakeGateway:
    """PUT /events/{id}/onsale as the gateway answers it (entrypoints/gateway/queue.py): applied at once, the
    room opening with it; once open, another opensAt is 409 sale_open. `die_under` first requests are applied,
    then the connection drops without an answer (the gateway SIGKILLed under them)."""

    def __init__(self, die_under: int = 0, status: int | None = None) -> None:
        self.die_under, self.status = die_under, status
        self.asked: list[dict[str, Any]] = []
        self.opens_at: str | None = None

    async def on_sale(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.asked.append(body)
        if self.status is not None:
            return web.json_response({"success": False}, status=self.status)
        if self.opens_at is not None and body["opensAt"] != self.opens_at:
            return web.json_response({"success": False, "code": "sale_open"}, status=409)
        self.opens_at = body["opensAt"]
        if len(self.asked) <= self.die_under:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.json_response({"success": True, **body})


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    servers: list[TestServer] = []

    async def start(gateway: FakeGateway) -> str:
        app = web.Application()
        app.router.add_put(f"/events/{EVENT}/onsale", gateway.on_sale)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return str(server.make_url(""))

    yield start
    for server in servers:
        await server.close()


async def test_an_opening_the_gateway_died_under_is_asked_again_unchanged(serve: Any) -> None:
    gateway = FakeGateway(die_under=2)
    journal = QueueJournal()

    await _open(await serve(gateway), EVENT, 300, time.monotonic(), time.monotonic() + 60, journal)

    assert journal.opened
    assert len(gateway.asked) == 3, gateway.asked
    assert all(body == gateway.asked[0] for body in gateway.asked), gateway.asked


async def test_an_opening_never_accepted_fails_naming_the_request_and_its_last_answer(serve: Any) -> None:
    gateway = FakeGateway(status=503)
    journal = QueueJournal()

    with pytest.raises(ChaosError, match=rf"sale of {EVENT} was not opened: PUT /events/{EVENT}/onsale .* 503"):
        await _open(await serve(gateway), EVENT, 300, time.monotonic(), time.monotonic() + 1, journal)
    assert not journal.opened and len(gateway.asked) >= 2


async def test_a_failing_part_of_the_traffic_stops_the_others_and_is_raised() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def fails() -> None:
        raise ChaosError("the opening failed")

    with pytest.raises(ChaosError, match="the opening failed"):
        await _together(time.monotonic() + 600, {"joins": forever(), "the opening": fails()})
    assert cancelled.is_set()


async def test_parts_of_the_traffic_still_running_at_the_deadline_are_named() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def ends() -> None:
        return None

    with pytest.raises(ChaosError, match=r"still running .*: holds, joins v1$"):
        await _together(time.monotonic() + 0.2, {"joins v1": forever(), "kills": ends(), "holds": forever()})
