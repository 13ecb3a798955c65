"""The waiting room chaos bench's own waits end: the organiser's opening survives a gateway killed under it, and
gives up with a reason; the traffic's parts end together, with a reason if one does not; a look at whether
everything has settled, and a call to supervisord, give up on a server that does not answer; the command says
why in one line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from boxoffice.bench import chaos, faults, queue_chaos
from boxoffice.bench.chaos import _settled
from boxoffice.bench.faults import ChaosError
from boxoffice.bench.queue_chaos import QueueJournal, _open, _together
from boxoffice.entrypoints import cli

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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve_app() -> AsyncIterator[Callable[[str, Handler], Awaitable[str]]]:
    """Serves one route on a free port: its base URL."""
    servers: list[TestServer] = []

    async def start(path: str, handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", path, handler)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
def serve(serve_app: Callable[[str, Handler], Awaitable[str]]) -> Callable[[FakeGateway], Awaitable[str]]:
    return lambda gateway: serve_app(f"/events/{EVENT}/onsale", gateway.on_sale)


async def test_an_opening_the_gateway_died_under_is_asked_again_unchanged(serve: Any) -> None:
    gateway = FakeGateway(die_under=2)
    journal = QueueJournal()

    await _open(await serve(gateway), EVENT, 300, time.monotonic(), time.monotonic() + 60, journal)

    assert journal.opened and journal.opening_answers[-1] == "200", journal.opening_answers
    assert "ServerDisconnectedError" in journal.opening_answers, journal.opening_answers
    assert len(gateway.asked) == 3, gateway.asked  # (aiohttp itself sends a PUT again on a reused connection)
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


class QuietDatabase:
    """What `_settled` reads when every service beats, nothing lags and nothing is left to publish."""

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[dict[str, Any]]:
        return [{"service": "waitingroom", "info": b"{}", "age": 0.5}]

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> int:
        return 0


class SlowDatabase(QuietDatabase):
    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[dict[str, Any]]:
        assert timeout is not None, "a query without a timeout"
        raise TimeoutError


async def test_a_gateway_that_never_answers_its_health_is_not_settled(serve_app: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(request: web.Request) -> web.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    # the healthy gateway gets the full wait: a loaded machine can take longer than the short one to answer
    assert await _settled(QuietDatabase(), await serve_app("/health", ok), 5.0) is None  # type: ignore[arg-type]
    monkeypatch.setattr(chaos, "SETTLED_CHECK_SECONDS", 0.2)
    moving = await _settled(QuietDatabase(), await serve_app("/health", never), 5.0)  # type: ignore[arg-type]
    assert moving == "gateway's /health not answered within 0.2 s"


async def test_a_database_that_does_not_answer_is_not_settled() -> None:
    moving = await _settled(SlowDatabase(), "http://127.0.0.1:9", 5.0)  # type: ignore[arg-type]
    assert moving == f"the database did not answer within {chaos.SETTLED_CHECK_SECONDS:g} s"


async def test_a_supervisord_that_does_not_answer_is_an_error(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults, "SUPERVISOR_CALL_SECONDS", 0.2)
    path = tmp_path / "supervisor.sock"
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # reads the call, never answers
        writer.close()

    server = await asyncio.start_unix_server(silent, path=str(path))
    try:
        programs = faults.Programs(SimpleNamespace(socket=path))  # type: ignore[arg-type]
        with pytest.raises(faults.ChaosError, match=r"supervisord getAllProcessInfo.*timed out"):
            await programs.pids(["gateway"])
        assert accepted.is_set()
    finally:
        server.close()
        await server.wait_closed()


def test_bench_chaos_waiting_room_ends_with_the_reason_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def gives_up(seconds: float, seed: int | None, console: Any) -> bool:
        raise ChaosError(f"the sale of {EVENT} was not opened: last answer 503")

    monkeypatch.setattr(queue_chaos, "run", gives_up)
    result = CliRunner().invoke(cli.app, ["bench", "chaos", "--waiting-room", "--seconds", "5"])
    assert result.exit_code == 1, result.output
    assert f"error: the sale of {EVENT} was not opened: last answer 503" in result.output, result.output
    assert "Traceback" not in result.output
