"""The realtime service: pushes every seat change to every open browser, over Server-Sent Events and
WebSockets.

It tails the seat topics without a consumer group and serves `GET /events/{eventId}/live` on its own port
(adapters/sse_server.py); the gateway forwards the public URL here, or hands the browser's socket over.
"""

from __future__ import annotations

from boxoffice import bootstrap
from boxoffice.bootstrap import realtime
from boxoffice.config import Settings


async def main(settings: Settings) -> None:
    async with bootstrap.runtime(settings, "realtime", produces=False, pool_size=4) as rt:
        await realtime.serve(rt)
