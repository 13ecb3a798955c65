"""The live bench's stand-in browser counts every frame once, however the bytes are split between reads."""

from __future__ import annotations

import asyncio

import pytest

from boxoffice.bench.live import Listener, LiveClient
from boxoffice.service_layer.live_hub import sse_frame

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"


def stream(changes: int) -> bytes:
    snapshot = sse_frame({"seq": 0, "type": "snapshot", "seats": []})
    frames = [sse_frame({"seq": n, "type": "seat.reserved", "seatIds": ["A1"], "at": "2026-12-05T04:00:00.000Z"})
              for n in range(1, changes + 1)]
    return HEAD + snapshot + b": keepalive\n\n".join(frames) + b": keepalive\n\n"


@pytest.mark.parametrize("timed", [False, True])
@pytest.mark.parametrize("chunk", [1, 5, 6, 7, 13, 4096])
def test_every_frame_is_counted_once_whatever_the_reads(timed: bool, chunk: int) -> None:
    listener = Listener()
    client = LiveClient(listener, b"", timed)
    data = stream(25)
    for start in range(0, len(data), chunk):
        client.data_received(data[start:start + chunk])
    assert (listener.ready, listener.received) == (1, 25)
    assert len(listener.latencies) == (25 if timed else 0)


class RecordingTransport:
    def __init__(self) -> None:
        self.reading = True
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return False


async def test_a_counting_connection_rests_once_its_snapshot_is_in_and_is_woken_to_read_again() -> None:
    listener = Listener()
    client = LiveClient(listener, b"GET /events/e/live", timed=False)
    transport = RecordingTransport()
    client.connection_made(transport)  # type: ignore[arg-type]
    data = stream(3)
    client.data_received(HEAD)
    assert transport.reading, "no frame yet: it reads on until the snapshot is in"
    client.data_received(data[len(HEAD):])
    assert not transport.reading and list(listener.resting) == [transport]
    assert (transport.sent, listener.ready, listener.received) == (b"GET /events/e/live", 1, 3)
    waking = asyncio.ensure_future(listener.wake_resting_forever(0.01))
    try:
        async with asyncio.timeout(5):
            while not transport.reading:
                await asyncio.sleep(0.005)
    finally:
        waking.cancel()
    assert not listener.resting


def test_a_timed_connection_never_rests() -> None:
    listener = Listener()
    client = LiveClient(listener, b"", timed=True)
    transport = RecordingTransport()
    client.connection_made(transport)  # type: ignore[arg-type]
    client.data_received(stream(3))
    assert transport.reading and not listener.resting
    assert (listener.timed_ready, listener.timed_received, len(listener.latencies)) == (1, 3, 3)
