"""`boxoffice bench live`: N open live connections on one event while a crowd books.

Prints commit-to-client latency (the change's commit timestamp `at` → its arrival at the client, on the
same clock), messages delivered per second, and the memory each connection costs the realtime service
(and the gateway, which relays the public stream).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import psutil
from rich.console import Console
from rich.table import Table

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.embedded import free_port
from boxoffice.adapters.postgres import create_pool
from boxoffice.adapters.supervisor import Supervisor
from boxoffice.bench.holds import _pct, bench_event
from boxoffice.config import Settings


def _process(data_dir: Path, name: str) -> psutil.Process | None:
    for program, _state, description in Supervisor(data_dir).status():
        if program == name and description.startswith("pid "):
            return psutil.Process(int(description.split()[1].rstrip(",")))
    return None


def _rss(process: psutil.Process | None) -> int:
    if process is None:
        return 0
    return process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))


class Listener:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.received = 0
        self.ready = 0


async def _listen(session: aiohttp.ClientSession, url: str, listener: Listener, stop: asyncio.Event) -> None:
    async with session.get(url) as response:
        first = True
        async for line in response.content:
            if not line.startswith(b"data: "):
                continue
            if first:
                first = False
                listener.ready += 1
                continue
            arrived = time.time()
            at = line.find(b'"at":"')
            if at >= 0:
                stamp = line[at + 6:line.index(b'"', at + 6)].decode()
                listener.latencies.append((arrived - datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                                           .timestamp()) * 1000)
            listener.received += 1
            if stop.is_set():
                return


def run(connections: list[int], rate: float, seconds: float, direct: bool, console: Console) -> None:
    from boxoffice import platform

    data_dir = Path(tempfile.mkdtemp(prefix="boxoffice-bench-"))
    settings = Settings(data_dir=data_dir, http_port=free_port())
    console.print(f"[bold]bench live[/]: {', '.join(map(str, connections))} connections "
                  f"({'straight to the realtime service' if direct else 'through the gateway'}), a crowd booking "
                  f"{rate:g} seats/s for {seconds:g} s each round; platform in {data_dir}")
    with console.status("starting the platform..."):
        runtime = platform.up(settings)
    table = Table(title="commit → browser", title_justify="left")
    for column in ("connections", "changes", "delivered", "missing", "msgs/s", "p50 ms", "p99 ms", "max ms",
                   "realtime KiB/conn", "gateway KiB/conn"):
        table.add_column(column, justify="right")
    try:
        for count in connections:
            with console.status(f"{count} connections..."):
                table.add_row(*asyncio.run(_round(settings, runtime, count, rate, seconds, direct)))
    finally:
        with console.status("stopping the platform..."):
            platform.down(settings)
    console.print(table)


async def _round(settings: Settings, runtime: object, count: int, rate: float, seconds: float,
                 direct: bool) -> list[str]:
    pool = await create_pool(runtime.database_url, size=2)  # type: ignore[attr-defined]
    spec = bench_event(int(rate * seconds) + 50)
    async with pool.acquire() as con:
        await create_event(con, spec)
    await pool.close()
    base = f"http://127.0.0.1:{runtime.realtime_port}" if direct else runtime.base_url  # type: ignore[attr-defined]
    realtime, gateway = _process(settings.data_path, "realtime"), _process(settings.data_path, "gateway")
    memory_before = (_rss(realtime), _rss(gateway))
    listener, stop = Listener(), asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        url = f"{base}/events/{spec.event_id}/live"
        streams = []
        for i in range(count):
            streams.append(asyncio.create_task(_listen(session, url, listener, stop)))
            if i % 200 == 199:
                await asyncio.sleep(0.05)
        deadline = time.monotonic() + 60
        while listener.ready < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        memory_after = (_rss(realtime), _rss(gateway))

        seats = [s.seat_id for s in spec.seats()]
        random.Random(count).shuffle(seats)
        changes = int(rate * seconds)
        started = time.perf_counter()
        async with aiohttp.ClientSession(runtime.base_url) as api:  # type: ignore[attr-defined]
            for i in range(changes):
                body = {"eventId": spec.event_id, "seatIds": [seats[i]], "userId": f"fan_{i}"}
                asyncio.ensure_future(api.post("/bookings", json=body))
                await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
            expected = changes * listener.ready
            deadline = time.monotonic() + 30
            while listener.received < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        wall = time.perf_counter() - started
        stop.set()
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    per_connection = [(after - before) / 1024 / max(count, 1) for before, after in zip(memory_before, memory_after,
                                                                                      strict=True)]
    late = listener.latencies
    return [f"{count:,}", f"{changes:,}", f"{listener.received:,}", f"{max(0, expected - listener.received):,}",
            f"{listener.received / wall:,.0f}", f"{_pct(late, .5):.1f}", f"{_pct(late, .99):.1f}",
            f"{max(late) if late else float('nan'):.1f}", f"{per_connection[0]:.1f}",
            "-" if direct else f"{per_connection[1]:.1f}"]
