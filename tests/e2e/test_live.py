"""Every open browser sees every seat change: SSE through the gateway, with resume after a disconnect."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.api_client import book, seat_statuses, wait_for
from tests.e2e.sse import LiveStream
from tests.platforms import RunningPlatform

EVENT = "coldplay_world_tour"


@pytest.fixture
async def client(platform: RunningPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=httpx.Timeout(30, read=None)) as c:
        yield c


async def test_three_windows_see_each_booking(client: httpx.AsyncClient) -> None:
    async with LiveStream(client, EVENT) as one, LiveStream(client, EVENT) as two, LiveStream(client, EVENT) as three:
        snapshot = one.messages[0]
        assert snapshot["type"] == "snapshot" and snapshot["available"] == snapshot["total"] - snapshot["reserved"] \
            - snapshot["booked"]
        for seat in ("A1", "A2", "A3"):
            assert (await book(client, EVENT, [seat], f"fan_{seat}")).status_code == 201
        for window in (one, two, three):
            messages = await window.wait_for(lambda ms: len(ms) >= 4)
            changes = messages[1:4]
            assert [c["type"] for c in changes] == ["seat.reserved"] * 3
            assert [c["seatIds"] for c in changes] == [["A1"], ["A2"], ["A3"]]
            assert [c["bookingId"] for c in changes] == [None] * 3  # nobody learns another's booking id
            assert changes[-1]["available"] == snapshot["available"] - 3
            assert changes[-1]["reserved"] == snapshot["reserved"] + 3
            assert [c["seq"] for c in changes] == [snapshot["seq"] + 1, snapshot["seq"] + 2, snapshot["seq"] + 3]


async def test_a_reconnect_with_the_last_id_gets_exactly_the_missed_changes(client: httpx.AsyncClient) -> None:
    async with LiveStream(client, EVENT) as window:
        last_seen = window.messages[-1]["seq"]
    for seat in ("B1", "B2"):
        assert (await book(client, EVENT, [seat], "while_away")).status_code == 201
    async with LiveStream(client, EVENT, last_event_id=last_seen) as resumed:
        missed = await resumed.wait_for(lambda ms: len(ms) >= 2)
        await asyncio.sleep(0.3)
        assert [m["type"] for m in resumed.messages] == ["seat.reserved", "seat.reserved"]
        assert [m["seq"] for m in missed] == [last_seen + 1, last_seen + 2]
        assert [m["seatIds"] for m in missed] == [["B1"], ["B2"]]


async def test_windows_opened_mid_rush_converge_on_the_seat_map(client: httpx.AsyncClient) -> None:
    seats = [f"{row}{n}" for row in "CDEF" for n in range(1, 26)]
    rng = random.Random(7)

    async def rush() -> None:
        await asyncio.gather(*(book(client, EVENT, rng.sample(seats, 2), f"rush_{i}") for i in range(150)))

    windows = [LiveStream(client, EVENT) for _ in range(4)]
    rushing = asyncio.create_task(rush())
    for window in windows:  # open while bookings commit
        await window.__aenter__()
        await asyncio.sleep(0.05)
    await rushing
    truth = await seat_statuses(client, EVENT)
    try:
        for window in windows:
            await window.wait_for(lambda ms, w=window: w.seat_map() == truth, timeout=10)
            seqs = [m["seq"] for m in window.messages]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a change was skipped or repeated"
    finally:
        for window in windows:
            await window.__aexit__()


async def test_live_is_refused_cleanly_while_the_realtime_service_is_down(client: httpx.AsyncClient,
                                                                         platform: RunningPlatform) -> None:
    assert platform.cli("stop", "realtime").returncode == 0
    try:
        refused = await client.get(f"/events/{EVENT}/live")
        assert refused.status_code == 503 and refused.json()["code"] == "live_unavailable"
        assert refused.headers["retry-after"] == "2"
    finally:
        assert platform.cli("start", "realtime").returncode == 0

    async def serving_again() -> bool:  # as a browser's EventSource retries until the service is back
        async with client.stream("GET", f"/events/{EVENT}/live") as response:
            return response.status_code == 200

    assert await wait_for(serving_again, timeout=30)
    async with LiveStream(client, EVENT) as window:
        assert window.messages[0]["type"] == "snapshot"


async def _gateway_restarted(client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    os.kill(platform.pid("gateway"), signal.SIGKILL)

    async def serving() -> bool:
        try:
            return (await client.get("/health")).status_code == 200
        except httpx.TransportError:
            return False

    assert await wait_for(serving, timeout=30)


def _handoff_sockets_taken(platform: RunningPlatform) -> bool:
    """Every realtime process is bound to its handoff socket (a test before may have restarted them)."""
    sockets = sorted((platform.data_dir / "handoff").glob("*.sock"))
    if [s.name for s in sockets] != ["realtime-2.sock", "realtime.sock"]:
        return False
    for path in sockets:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:  # a file left by a process that has not bound again yet
                return False
    return True


async def test_open_pages_outlive_a_gateway_restart(client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    """On one machine the gateway hands each live socket to the realtime service, which writes to it
    directly: killing the gateway leaves open pages connected and updating."""

    async def handoff_ready() -> bool:
        return _handoff_sockets_taken(platform)

    assert await wait_for(handoff_ready, timeout=30)
    async with LiveStream(client, EVENT) as window:
        await _gateway_restarted(client, platform)
        assert (await book(client, EVENT, ["J9"], "after_gateway_restart")).status_code == 201
        await window.wait_for(lambda ms: any("J9" in m.get("seatIds", ()) for m in ms))
        assert [m["type"] for m in window.messages].count("snapshot") == 1  # the same connection all along


async def test_without_the_handoff_socket_the_gateway_relays(client: httpx.AsyncClient,
                                                             platform: RunningPlatform) -> None:
    handoff = platform.data_dir / "handoff"
    aside = handoff.with_name("handoff.aside")
    handoff.rename(aside)
    try:
        await asyncio.sleep(1.5)  # the gateway looks for handoff sockets once a second
        async with LiveStream(client, EVENT) as window:
            assert (await book(client, EVENT, ["J10"], "relayed")).status_code == 201
            await window.wait_for(lambda ms: any("J10" in m.get("seatIds", ()) for m in ms))
    finally:
        aside.rename(handoff)
        await asyncio.sleep(1.5)  # so that later tests find the handoff sockets again


async def test_live_connections_are_shared_between_the_realtime_processes(client: httpx.AsyncClient,
                                                                          platform: RunningPlatform) -> None:
    import asyncpg
    import orjson

    async def connections_per_process() -> dict[int, int]:
        con = await asyncpg.connect(str(platform.runtime["database_url"]))
        try:
            rows = await con.fetch("SELECT pid, info FROM service_heartbeats WHERE service = 'realtime' "
                                   "AND beat_at > now() - interval '3 seconds'")
        finally:
            await con.close()
        return {r["pid"]: orjson.loads(r["info"]).get("connections", 0) for r in rows}

    async with contextlib.AsyncExitStack() as stack:
        windows = [await stack.enter_async_context(LiveStream(client, EVENT)) for _ in range(4)]
        shared = await wait_for(lambda: _all_serving(connections_per_process, expected=2), timeout=10)
        assert shared, await connections_per_process()
        assert (await book(client, EVENT, ["J12"], "shared")).status_code == 201
        for window in windows:
            await window.wait_for(lambda ms: any("J12" in m.get("seatIds", ()) for m in ms))


async def _all_serving(read, expected: int) -> bool:
    counts = await read()
    return len(counts) == expected and all(n >= 1 for n in counts.values())


async def test_the_same_stream_over_a_websocket(client: httpx.AsyncClient, platform: RunningPlatform) -> None:
    import orjson
    import websockets

    url = platform.base_url.replace("http://", "ws://") + f"/ws/events/{EVENT}"
    gateway_log = platform.data_dir / "logs" / "gateway.log"
    logged_before = gateway_log.stat().st_size
    async with websockets.connect(url) as socket:
        snapshot = orjson.loads(await asyncio.wait_for(socket.recv(), 10))
        assert snapshot["type"] == "snapshot" and {"available", "reserved", "booked", "seats"} <= set(snapshot)
        assert (await book(client, EVENT, ["K1"], "websocket_fan")).status_code == 201
        while True:
            message = orjson.loads(await asyncio.wait_for(socket.recv(), 10))
            if "K1" in message.get("seatIds", ()):
                break
        assert message["type"] == "seat.reserved" and message["seq"] > snapshot["seq"]

    # Resuming from the snapshot's sequence number replays exactly what came after it.
    async with websockets.connect(f"{url}?lastEventId={snapshot['seq']}") as socket:
        replayed = orjson.loads(await asyncio.wait_for(socket.recv(), 10))
        assert replayed["seq"] == snapshot["seq"] + 1

    async with websockets.connect(url.replace(EVENT, "no_such_event")) as socket:
        refused = orjson.loads(await asyncio.wait_for(socket.recv(), 10))
        assert refused == {"type": "error", "success": False, "code": "event_not_found",
                           "error": "Event no_such_event does not exist"}
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd.code == 1008
    # Clients closing their sockets is ordinary: no traceback in the gateway's log for it.
    with gateway_log.open("rb") as log:
        log.seek(logged_before)
        assert b"Exception in ASGI application" not in log.read()


async def test_the_stream_carries_the_headers_of_every_answer(client: httpx.AsyncClient) -> None:
    """Written by a realtime process, not the gateway's middleware: nosniff, no referrer, no framing too."""
    async with client.stream("GET", f"/events/{EVENT}/live") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert (response.headers["x-content-type-options"], response.headers["referrer-policy"],
                response.headers["x-frame-options"]) == ("nosniff", "no-referrer", "DENY")


async def _read_until(reader: asyncio.StreamReader, wanted: bytes, seconds: float = 10) -> bytes:
    """What the connection sent up to and including `wanted` (TimeoutError if it never comes)."""
    got = b""
    async with asyncio.timeout(seconds):
        while wanted not in got:
            chunk = await reader.read(65536)
            assert chunk, f"closed before {wanted!r}: {got[:300]!r}"
            got += chunk
    return got


@pytest.mark.parametrize("where", ["header", "query"])
async def test_a_last_event_id_too_long_to_be_a_change_number_gets_a_snapshot(platform: RunningPlatform,
                                                                            where: str) -> None:
    """Found from outside: 5,000 digits made the realtime service fail reading it as a number, and the request
    was never answered (the connection stayed open and silent for good)."""
    digits = "7" * 5000
    target = f"/events/{EVENT}/live" + (f"?lastEventId={digits}" if where == "query" else "")
    header = f"Last-Event-ID: {digits}\r\n" if where == "header" else ""
    reader, writer = await asyncio.open_connection("127.0.0.1", urlsplit(platform.base_url).port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n{header}\r\n".encode())
        got = await _read_until(reader, b"\n\n")
        assert got.startswith(b"HTTP/1.1 200 OK"), got[:200]
        assert b'"type":"snapshot"' in got.split(b"\r\n\r\n", 1)[1], got[:400]
    finally:
        writer.close()


async def test_live_requests_pipelined_on_one_connection_make_one_stream(client: httpx.AsyncClient,
                                                                        platform: RunningPlatform) -> None:
    """Found from outside: each live request pipelined behind the first was handed to a realtime process too,
    so one connection carried many streams (50 requests of 3 KB brought back 3.4 MB): one stream, the rest
    dropped."""
    reader, writer = await asyncio.open_connection("127.0.0.1", urlsplit(platform.base_url).port)
    try:
        writer.write(f"GET /events/{EVENT}/live HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                     + b"GET /events/jazz_night/live HTTP/1.1\r\nHost: x\r\n\r\n" * 5)
        got = await _read_until(reader, b"\n\n")
        seat = random.choice([s for s, status in (await seat_statuses(client, EVENT)).items() if status == "AVAILABLE"])
        assert (await book(client, EVENT, [seat], "pipelining_watcher")).status_code == 201
        got += await _read_until(reader, f'"{seat}"'.encode())
        # The later requests were handed over (or not) in the same turn as the first: by the change, all are in.
        assert got.count(b"HTTP/1.1 ") == 1 and b'"eventId":"jazz_night"' not in got, got[:2000]
    finally:
        writer.close()


async def test_an_error_written_by_a_realtime_process_carries_the_headers_of_every_answer(
        client: httpx.AsyncClient) -> None:
    missing = await client.get("/events/no_such_event_xyz/live")
    assert missing.status_code == 404 and missing.json()["code"] == "event_not_found"
    assert (missing.headers["x-content-type-options"], missing.headers["referrer-policy"],
            missing.headers["x-frame-options"]) == ("nosniff", "no-referrer", "DENY")
