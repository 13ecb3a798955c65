"""The live bench's stand-in browser counts every frame once, however the bytes are split between reads."""

from __future__ import annotations

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
