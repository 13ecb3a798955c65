"""Holds and payments answered by the gateway's HTTP protocol itself (entrypoints/gateway/direct_answers.py) get
the answers FastAPI's routes give: the lean layer's sequences go over real sockets to two uvicorn servers with the
gateway's protocol, one serving the app as it runs, one without the lean layer, and statuses, bodies, headers and
request metrics are compared. Then what HTTP asks of a server: pipelined requests answered in order, HTTP/1.0 and
`Connection: close`, a client that leaves before its answer."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from boxoffice import metrics
from boxoffice.config import Settings
from boxoffice.entrypoints.gateway.app import create_app
from boxoffice.entrypoints.gateway.direct_answers import DirectAnswers
from boxoffice.entrypoints.gateway.live_splice import LiveSplicingProtocol
from tests.unit.test_lean_bookings import (
    ACCOUNTS,
    JSON,
    OPEN_DEMO,
    PAYING,
    PAYING_WITH_ACCOUNTS,
    Exchange,
    Gateway,
    PayingGateway,
    body,
    lean_layer,
    normalised,
    normalised_headers,
)


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[int]:
    """The app behind uvicorn with the gateway's protocol, as app.serve runs it (no lifespan: the fake gateway is
    already in place), on a free port."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=LiveSplicingProtocol, lifespan="off", log_config=None, access_log=False,
                            proxy_headers=False, timeout_keep_alive=75)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield listening.getsockname()[1]
    finally:
        server.should_exit = True
        await serving


def app_for(settings: Settings, gateway: Any, lean: bool) -> Any:
    app = create_app(settings)
    app.lean = lean
    app.state.gateway = gateway
    return app


async def exchanged(settings: Settings, gateway: type[Gateway], requests: list[Exchange],
                    lean: bool) -> tuple[list[Any], dict[Any, float], int]:
    """Each answer, the requests counted by the metrics, and how many were answered directly."""
    before, directly = dict(metrics.HTTP_REQUESTS.values), DirectAnswers.answered_directly
    app = app_for(settings, gateway(settings), lean)
    seen = []
    async with served(app) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for method, path, content, headers in requests:
            try:
                answer = await http.request(method, path, content=content, headers=headers)
            except httpx.LocalProtocolError:  # a header value that httpx will not send
                seen.append(None)
                continue
            kept = {k: v.replace(f":{port}/", ":…/") for k, v in normalised_headers(answer.headers).items()
                    if k != "date"}
            seen.append((answer.status_code, normalised(answer.json()) if answer.content else None, kept))
    counted = {k: v - before.get(k, 0) for k, v in metrics.HTTP_REQUESTS.values.items() if v != before.get(k, 0)}
    return seen, counted, DirectAnswers.answered_directly - directly


def holds(requests: list[tuple[bytes, dict[str, str], str]]) -> list[Exchange]:
    return [("POST", f"/bookings{query}", content, headers) for content, headers, query in requests]


@pytest.mark.parametrize(("settings", "gateway", "requests"), [
    (Settings(), Gateway, holds(OPEN_DEMO)),
    (Settings(auth="on", rate_limit_user_burst=4), Gateway, holds(ACCOUNTS)),
    (Settings(), PayingGateway, PAYING),
    (Settings(auth="on", rate_limit_user_burst=6), PayingGateway, PAYING_WITH_ACCOUNTS),
], ids=["holds", "holds with accounts", "payments", "payments with accounts"])
async def test_the_protocol_answers_as_the_routes_do(settings: Settings, gateway: type[Gateway],
                                                     requests: list[Exchange]) -> None:
    direct, direct_counted, answered = await exchanged(settings, gateway, requests, lean=True)
    routed, routed_counted, none = await exchanged(settings, gateway, requests, lean=False)
    assert none == 0 and answered > len(requests) // 3, answered  # the comparison compares the two paths
    for number, (one, other) in enumerate(zip(direct, routed, strict=True)):
        assert one == other, f"request {number}: {requests[number][:3]!r}"
    assert direct_counted == routed_counted


async def test_what_the_protocol_is_unsure_about_goes_to_the_app() -> None:
    app = app_for(Settings(), Gateway(Settings()), lean=True)
    directly = DirectAnswers.answered_directly
    async with served(app) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.post("/bookings", content=body(seatIds=["A1"]), headers=JSON)).status_code == 201
        assert DirectAnswers.answered_directly == directly + 1
        assert (await http.post("/bookings", content=b'{"eventId": ', headers=JSON)).status_code == 422
        assert (await http.post("/bookings?x=1", content=body(seatIds=["A2"]), headers=JSON)).status_code == 201
        assert (await http.post("/bookings", content=body(seatIds=["A3"]),
                                headers={"Content-Type": "text/plain"})).status_code == 415
    assert DirectAnswers.answered_directly == directly + 1
    layer = lean_layer(app)
    assert (layer.answered, layer.passed_on) == (0, 3)  # the malformed body, the query string, the text body


def request(seat: str, *extra: bytes, version: bytes = b"1.1") -> bytes:
    content = body(seatIds=[seat])
    return (b"POST /bookings HTTP/" + version + b"\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(content)).encode() + b"\r\n" + b"".join(h + b"\r\n" for h in extra) + b"\r\n" + content)


async def one_answer(reader: asyncio.StreamReader) -> bytes:
    """The next answer on a connection, head and body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.startswith(b"content-length")))
    return head + await reader.readexactly(length)


async def answers_on_one_connection(port: int, sent: bytes, count: int) -> list[bytes]:
    """The answers to `count` requests sent at once on one connection, each with its body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    seen = [await one_answer(reader) for _ in range(count)]
    writer.close()
    return seen


async def test_pipelined_requests_are_answered_in_order() -> None:
    app = app_for(Settings(), Gateway(Settings()), lean=True)
    async with served(app) as port:
        seen = await answers_on_one_connection(
            port, request("A1") + request("A1") + b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n" + request("A2"), 4)
    assert [a.split(b" ")[1] for a in seen] == [b"201", b"409", seen[2].split(b" ")[1], b"201"]
    assert b'"seatIds":["A1"]' in seen[0] and b"seat_unavailable" in seen[1] and b'"seatIds":["A2"]' in seen[3]


@pytest.mark.parametrize(("sent", "closes"), [
    (request("A1", version=b"1.0"), True),
    (request("A1", b"Connection: close"), True),
    (request("A1"), False),
], ids=["HTTP/1.0", "Connection: close", "kept alive"])
async def test_the_connection_closes_when_the_client_asks(sent: bytes, closes: bool) -> None:
    app = app_for(Settings(), Gateway(Settings()), lean=True)
    async with served(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(sent)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 201 ")
        assert (b"\r\nconnection: close\r\n" in head) is closes
        await asyncio.wait_for(reader.read(10_000), 5)  # the body
        # The server's end: closed after the answer, or still open for the next request.
        rest = await asyncio.wait_for(reader.read(1), 0.5) if closes else None
        assert rest in (b"", None)
        if not closes:
            writer.write(request("A2"))
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 201 ")
        writer.close()


async def test_a_client_that_leaves_before_its_answer_leaves_the_hold_decided() -> None:
    gateway = Gateway(Settings())
    app = app_for(Settings(), gateway, lean=True)
    decided = asyncio.Event()
    publish = gateway.publisher.publish

    async def slow_publish(topic: str, command: Any) -> None:
        await asyncio.sleep(0.2)
        await publish(topic, command)
        decided.set()

    gateway.publisher.publish = slow_publish  # type: ignore[method-assign]
    async with served(app) as port:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request("A1"))
        await writer.drain()
        writer.close()
        await asyncio.wait_for(decided.wait(), 5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            again = await http.post("/bookings", content=body(seatIds=["A1"]), headers=JSON)
    assert again.status_code == 409  # the first one holds it


async def read_all(reader: asyncio.StreamReader, seconds: float = 5) -> bytes:
    return await asyncio.wait_for(reader.read(), seconds)


def slow_gateway(seconds: float) -> Gateway:
    """Holds decided `seconds` after they are asked for."""
    gateway = Gateway(Settings())
    publish = gateway.publisher.publish

    async def slow_publish(topic: str, command: Any) -> None:
        await asyncio.sleep(seconds)
        await publish(topic, command)

    gateway.publisher.publish = slow_publish  # type: ignore[method-assign]
    return gateway


@pytest.mark.parametrize("decided_after", [0.0, 0.3], ids=["at once", "later"])
async def test_a_refusal_comes_after_the_answers_owed_before_it(decided_after: float) -> None:
    """A request the parser refuses, pipelined behind holds: their answers first, in order, then the 400."""
    app = app_for(Settings(), slow_gateway(decided_after), lean=True)
    async with served(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request("A1") + request("A2") + b"GARBAGE /x\x01 HTTP/1.1\r\n\r\n")
        answers = await read_all(reader)
        writer.close()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answers)
    assert statuses == [b"201", b"201", b"400"], answers
    assert answers.index(b'"seatIds":["A1"]') < answers.index(b'"seatIds":["A2"]') < answers.index(b"bad_request")


async def test_a_client_that_half_closes_after_its_request_gets_the_answer() -> None:
    app = app_for(Settings(), slow_gateway(0.2), lean=True)
    async with served(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request("A1"))
        writer.write_eof()
        answer = await read_all(reader)  # then the server closes: read() ends
        writer.close()
    assert answer.startswith(b"HTTP/1.1 201 ") and b'"seatIds":["A1"]' in answer


async def test_a_head_whose_end_is_split_between_two_reads_is_not_too_large() -> None:
    content = body(seatIds=["A1"]) + b" " * 50_000
    head = (b"POST /bookings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Pad: " + b"p" * 20_000
            + b"\r\nContent-Length: " + str(len(content)).encode() + b"\r\n")
    app = app_for(Settings(), Gateway(Settings()), lean=True)
    async with served(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(0.1)  # the server reads the head without its last CRLF
        writer.write(b"\r\n" + content)
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 201 "), answer


async def test_a_head_begun_in_the_read_that_ends_the_request_before_it_is_timed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from boxoffice.entrypoints.gateway import live_splice

    monkeypatch.setattr(live_splice, "HEAD_TIMEOUT_SECONDS", 0.5)
    app = app_for(Settings(), Gateway(Settings()), lean=True)
    async with served(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request("A1") + b"POST /bookings HTTP/1.1\r\nHo")
        answers = await read_all(reader, 5)  # the 408, then the close: not the 75 s keep-alive
        writer.close()
    assert answers.startswith(b"HTTP/1.1 201 ") and b"HTTP/1.1 408 " in answers, answers


async def test_each_head_has_the_whole_head_time_however_long_the_connection_has_been_open(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One timer per connection, left running between heads: when it fires during a head begun just before,
    that head still gets its whole time; one that then does not come in time is refused."""
    from boxoffice.entrypoints.gateway import live_splice

    monkeypatch.setattr(live_splice, "HEAD_TIMEOUT_SECONDS", 0.6)
    app = app_for(Settings(), Gateway(Settings()), lean=True)
    async with served(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request("A1"))
        first = await one_answer(reader)
        await asyncio.sleep(0.4)  # the time that must pass: the connection's timer fires during the next head
        second = request("A2")
        writer.write(second[:20])
        await asyncio.sleep(0.4)  # 0.8 s since the connection opened, 0.4 s into this head
        writer.write(second[20:])
        answered = await one_answer(reader)
        writer.write(b"POST /bookings HTTP/1.1\r\nHo")  # never finished
        rest = await read_all(reader, 5)
        writer.close()
    assert first.startswith(b"HTTP/1.1 201 ") and answered.startswith(b"HTTP/1.1 201 "), answered
    assert b"HTTP/1.1 408 " in rest, rest
    assert re.search(rb"\r\nx-request-id: [0-9a-f]{32}\r\n", rest), rest  # as every other answer has one
