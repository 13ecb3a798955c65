"""A realtime process's own port (local, for the gateway's relay) holds no connection whose request head does
not arrive in time, as the gateway's port does not."""

from __future__ import annotations

import asyncio

import pytest

from boxoffice.adapters import sse_server
from boxoffice.adapters.sse_server import LiveConnection


async def test_a_half_sent_head_is_answered_408_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse_server, "HEAD_WITHIN_SECONDS", 0.2)
    server = await asyncio.get_running_loop().create_server(
        lambda: LiveConnection(None, dict), "127.0.0.1", 0)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /events/taylor_swift_concert/live HTTP/1.1\r\nHost: x\r\n")  # no blank line
        async with asyncio.timeout(5):
            answer = await reader.read()  # until the server closes
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b'"code":"request_timeout"' in answer
