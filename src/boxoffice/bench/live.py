"""`boxoffice bench live`: N open live connections on one event while a crowd books.

Prints commit-to-client latency (the change's commit timestamp `at` → its arrival at the client, on the
same clock), messages delivered per second, and the memory each connection costs the realtime service
(and the gateway, which relays the public stream).
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import psutil
import uvloop
from rich.console import Console
from rich.table import Table

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.embedded import free_port
from boxoffice.adapters.postgres import create_pool
from boxoffice.adapters.supervisor import Supervisor
from boxoffice.bench.holds import _cpu_seconds, _pct, bench_event
from boxoffice.bench.running import fresh_data_dir, own_platform
from boxoffice.config import Settings


def _processes(data_dir: Path, name: str) -> list[psutil.Process]:
    """Every process of a service: `realtime`, `realtime-2`, ..."""
    return [psutil.Process(int(description.split()[1].rstrip(",")))
            for program, _state, description in Supervisor(data_dir).status()
            if (program == name or program.startswith(name + "-")) and description.startswith("pid ")]


def _rss(processes: list[psutil.Process]) -> int:
    return sum(p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
               for p in processes)


class Listener:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.received = 0
        self.ready = 0
        self.timed_received = 0
        self.timed_ready = 0
        self.resting: collections.deque[asyncio.ReadTransport] = collections.deque()
        self._moments: dict[bytes, float] = {}

    async def wake_resting_forever(self, every: float, slices: int = 10) -> None:
        """Counting connections read about once per `every`, a slice of them at a time (not all in one turn of
        the loop, which would delay the timed reads): frames wait in their socket buffers meanwhile, as they
        would in a browser's, and the load generator leaves the cores it shares to the platform."""
        while True:
            await asyncio.sleep(every / slices)
            for _ in range(math.ceil(len(self.resting) / slices)):
                transport = self.resting.popleft()
                if not transport.is_closing():
                    transport.resume_reading()

    def moment(self, stamp: bytes) -> float:
        """A change's commit time as epoch seconds: every connection gets the same stamps, parsed once."""
        at = self._moments.get(stamp)
        if at is None:
            if len(self._moments) > 100_000:
                self._moments.clear()
            at = self._moments[stamp] = datetime.fromisoformat(stamp.decode().replace("Z", "+00:00")).timestamp()
        return at


class LiveClient(asyncio.Protocol):
    """A browser's EventSource, cheaply: the load generator shares the two cores with the platform. Every
    connection counts the frames it gets (a frame's `data:` line follows a line break, and JSON holds none);
    TIMED of them also stamp each frame's arrival against the change's commit time and read at once.
    The others, once their snapshot is in, rest between reads (`Listener.wake_resting_forever`): the platform
    writes to their sockets all the same, and what is missing is counted at the end."""

    def __init__(self, listener: Listener, request: bytes, timed: bool) -> None:
        self._listener, self._request, self._timed = listener, request, timed
        self._buffer = b""
        self._tail = b""
        self._snapshot_seen = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        transport.write(self._request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self._timed:
            # The last 6 bytes are kept: a "\ndata: " split between two reads is counted once, with the second.
            frames = (self._tail + data).count(b"\ndata: ")
            self._tail = data[-6:] if len(data) >= 6 else (self._tail + data)[-6:]
            if frames and not self._snapshot_seen:
                self._snapshot_seen = True
                self._listener.ready += 1
                frames -= 1
            self._listener.received += frames
            if self._snapshot_seen and self._transport is not None:
                self._transport.pause_reading()
                self._listener.resting.append(self._transport)
            return
        arrived = time.time()
        frames_seen = (self._buffer + data).split(b"\n\n")
        self._buffer = frames_seen.pop()
        for frame in frames_seen:
            if b"data: " not in frame:
                continue
            if not self._snapshot_seen:
                self._snapshot_seen = True
                self._listener.ready += 1
                self._listener.timed_ready += 1
                continue
            at = frame.find(b'"at":"')
            if at >= 0:
                stamp = frame[at + 6:frame.index(b'"', at + 6)]
                self._listener.latencies.append((arrived - self._listener.moment(stamp)) * 1000)
            self._listener.received += 1
            self._listener.timed_received += 1


TIMED = 200  # connections that stamp every frame's arrival, spread evenly over the others
RESTING_READS_EVERY = 1.0  # seconds between reads of a counting connection


def run(connections: list[int], rate: float, seconds: float, direct: bool, console: Console) -> None:
    data_dir = fresh_data_dir()
    settings = Settings(data_dir=data_dir, http_port=free_port())
    console.print(f"[bold]bench live[/]: {', '.join(map(str, connections))} connections "
                  f"({'straight to the realtime service' if direct else 'through the gateway'}), a crowd booking "
                  f"{rate:g} seats/s for {seconds:g} s each round; platform in {data_dir}")
    table = Table(title="commit → browser", title_justify="left")
    for column in ("connections", "changes", "delivered", "missing", "msgs/s", "p50 ms", "p99 ms", "max ms",
                   "realtime KiB/conn", "gateway KiB/conn", "CPU % realtime / load generator / gateway"):
        table.add_column(column, justify="right")
    with own_platform(settings, console) as runtime:
        for count in connections:
            with console.status(f"{count} connections..."):
                # uvloop, as the platform's servers run: the client's reads cost less of the shared cores.
                table.add_row(*uvloop.run(_round(settings, runtime, count, rate, seconds, direct)))
    console.print(table)


async def _round(settings: Settings, runtime: object, count: int, rate: float, seconds: float,
                 direct: bool) -> list[str]:
    pool = await create_pool(runtime.database_url, size=2)  # type: ignore[attr-defined]
    spec = bench_event(int(rate * seconds) + 50)
    async with pool.acquire() as con:
        await create_event(con, spec)
    await pool.close()
    realtime, gateway = _processes(settings.data_path, "realtime"), _processes(settings.data_path, "gateway")
    memory_before = (_rss(realtime), _rss(gateway))
    listener = Listener()
    waking = asyncio.ensure_future(listener.wake_resting_forever(RESTING_READS_EVERY))
    host = "127.0.0.1"
    port = runtime.realtime_port if direct else runtime.http_port  # type: ignore[attr-defined]
    request = f"GET /events/{spec.event_id}/live HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    loop = asyncio.get_running_loop()
    transports = []
    timed_every = max(1, count // TIMED)
    for i in range(count):
        timed = i % timed_every == 0
        transport, _ = await loop.create_connection(
            lambda timed=timed: LiveClient(listener, request.encode(), timed), host, port)  # type: ignore[misc]
        transports.append(transport)
        if i % 200 == 199:
            await asyncio.sleep(0.05)
    deadline = time.monotonic() + 60
    while listener.ready < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    memory_after = (_rss(realtime), _rss(gateway))

    seats = [s.seat_id for s in spec.seats()]
    random.Random(count).shuffle(seats)
    changes = int(rate * seconds)
    watched = {"realtime": realtime, "load generator": [psutil.Process()], "gateway": gateway}
    cpu_before = {name: _cpu(processes) for name, processes in watched.items()}
    started = time.perf_counter()
    async with aiohttp.ClientSession(runtime.base_url) as api:  # type: ignore[attr-defined]
        posting: set[asyncio.Task[aiohttp.ClientResponse]] = set()  # held until done: the loop holds weak references
        for i in range(changes):
            body = {"eventId": spec.event_id, "seatIds": [seats[i]], "userId": f"fan_{i}"}
            post = asyncio.ensure_future(api.post("/bookings", json=body))
            posting.add(post)
            post.add_done_callback(posting.discard)
            await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
        # The crowd's time ends when the timed connections, which read at once, have every change; the
        # resting ones are only counted, so they may read their last frames after it.
        expected = changes * listener.ready
        deadline = time.monotonic() + 30
        while listener.timed_received < changes * listener.timed_ready and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    wall = time.perf_counter() - started
    busy = " / ".join(f"{(_cpu(processes) - cpu_before[name]) / wall:.0%}" for name, processes in watched.items())
    while listener.received < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    waking.cancel()
    for transport in transports:
        transport.close()
    per_connection = [(after - before) / 1024 / max(count, 1) for before, after in zip(memory_before, memory_after,
                                                                                      strict=True)]
    late = listener.latencies
    return [f"{count:,}", f"{changes:,}", f"{listener.received:,}", f"{max(0, expected - listener.received):,}",
            f"{listener.received / wall:,.0f}", f"{_pct(late, .5):.1f}", f"{_pct(late, .99):.1f}",
            f"{max(late) if late else float('nan'):.1f}", f"{per_connection[0]:.1f}",
            "-" if direct else f"{per_connection[1]:.1f}", busy]


def _cpu(processes: list[psutil.Process]) -> float:
    """CPU seconds the processes (and their children) have used: 100 % is one core."""
    return sum(_cpu_seconds({str(n): process for n, process in enumerate(processes)}).values())
