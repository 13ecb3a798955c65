"""HEAD is GET without the body (RFC 9110 §9.3.2): every GET route answers it with the GET's status and headers
and no body; a live feed's HEAD ends once its head is out, so the connection serves the next request; a route
without GET still says which methods it has."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import pytest

from tests.platforms import RunningPlatform

EVENT = "taylor_swift_concert"


@pytest.mark.parametrize("path", ["/health", "/events", f"/events/{EVENT}", f"/events/{EVENT}/seats", "/",
                                  "/docs", "/events/no_such_event", "/static/no-such-file.js"])
def test_a_head_gets_the_gets_status_and_headers_without_its_body(platform: RunningPlatform, path: str) -> None:
    with httpx.Client(base_url=platform.base_url, timeout=30) as client:
        got = client.get(path)
        head = client.head(path)
    assert head.status_code == got.status_code
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    if path != "/health":  # its figures move between two calls
        assert head.headers.get("content-length") == got.headers.get("content-length")


def test_a_head_on_a_route_without_get_is_405_naming_its_methods(platform: RunningPlatform) -> None:
    with httpx.Client(base_url=platform.base_url, timeout=30) as client:
        head = client.head("/bookings")
    assert head.status_code == 405 and head.headers["allow"] == "POST" and head.content == b""


async def test_a_head_on_a_live_feed_ends_and_the_connection_serves_the_next_request(
        platform: RunningPlatform) -> None:
    address = urlsplit(platform.base_url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(f"HEAD /events/{EVENT}/live HTTP/1.1\r\nHost: boxoffice\r\n\r\n".encode())
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(b"GET /health HTTP/1.1\r\nHost: boxoffice\r\n\r\n")
            following = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 ") and b"content-type: text/event-stream" in head.lower()
    assert following.startswith(b"HTTP/1.1 200 "), following  # nothing of the feed came before it
