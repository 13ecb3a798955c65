"""`boxoffice bench queue`: a crowd joins one event's waiting room, most before the opening, the rest after.

Prints joins/s and join latency, the fairness of the opening's draw (early joiners' places against their join
order: Kolmogorov–Smirnov against uniform, and Spearman's rank correlation, with p-values), the admission rate
against its target over a measured window, the latency from an admission's commit to the visitor's live status
for a sample of SSE watchers, and the invariants (places 1..N once each, admissions in order, no hold without an
admission).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import orjson
from rich.console import Console
from rich.table import Table

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.embedded import free_port
from boxoffice.adapters.postgres import create_pool
from boxoffice.adapters.supervisor import Supervisor
from boxoffice.bench.holds import _cpu_seconds, _pct, _process_cpu, bench_event
from boxoffice.bench.running import fresh_data_dir, own_platform
from boxoffice.config import Settings
from boxoffice.domain.waiting_room import OnSale

FAR = datetime(2099, 1, 1, tzinfo=UTC)


def ks_uniform(sample: list[float]) -> tuple[float, float]:
    """Kolmogorov–Smirnov statistic of a sample of (0, 1) against the uniform distribution, and its p-value
    (the Kolmogorov distribution with Stephens' small-sample correction)."""
    xs, n = sorted(sample), len(sample)
    d = max(max((i + 1) / n - x, x - i / n) for i, x in enumerate(xs))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, min(1.0, max(0.0, p))


def spearman(xs: list[int], ys: list[int]) -> tuple[float, float]:
    """Spearman's rank correlation of two lists of distinct ranks, and its two-sided p-value (normal
    approximation, fine for n in the hundreds and more)."""
    n = len(xs)
    rx = {x: i for i, x in enumerate(sorted(xs))}
    ry = {y: i for i, y in enumerate(sorted(ys))}
    d2 = sum((rx[x] - ry[y]) ** 2 for x, y in zip(xs, ys, strict=True))
    rho = 1 - 6 * d2 / (n * (n * n - 1))
    return rho, math.erfc(abs(rho) * math.sqrt(n - 1) / math.sqrt(2))


def run(visitors: int, early_share: float, clients: int, admit_per_minute: int, window: float, watchers: int,
        console: Console) -> None:
    data_dir = fresh_data_dir()
    settings = Settings(data_dir=data_dir, http_port=free_port(), booking_reply_seconds=10)
    console.print(f"[bold]bench queue[/]: {visitors:,} visitors ({early_share:.0%} before the opening) from "
                  f"{clients} concurrent clients; {admit_per_minute:,} admissions a minute measured over "
                  f"{window:g} s; {watchers} SSE watchers; platform in {data_dir}")
    with own_platform(settings, console) as runtime:
        asyncio.run(_measure(runtime.base_url, runtime.database_url, visitors, early_share, clients,
                             admit_per_minute, window, watchers, console, Supervisor(settings.data_path)))


async def _join_all(session: aiohttp.ClientSession, event_id: str, names: list[str],
                    clients: int) -> tuple[dict[str, dict[str, Any]], list[float], float]:
    answers: dict[str, dict[str, Any]] = {}
    latencies: list[float] = []
    todo = iter(names)

    async def client() -> None:
        for name in todo:
            started = time.perf_counter()
            async with session.post(f"/events/{event_id}/queue", json={"visitorId": name}) as response:
                body = await response.json()
                if response.status not in (200, 201, 202):
                    raise RuntimeError(f"join answered {response.status}: {body}")
            latencies.append((time.perf_counter() - started) * 1000)
            answers[name] = body

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return answers, latencies, time.perf_counter() - started


async def _watch(session: aiohttp.ClientSession, url: str, arrivals: dict[str, float], key: str,
                 admitted_first: set[str]) -> None:
    """Stamps the arrival of the status that admits the visitor; a stream whose first status already admits
    (the admission came before the stream opened) is noted apart, not timed."""
    first = True
    async with session.get(url + "/live", timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
        async for line in response.content:
            if line.startswith(b"data: "):
                if orjson.loads(line[6:])["status"] == "admitted":
                    if first:
                        admitted_first.add(key)
                    else:
                        arrivals[key] = time.time()
                    return
                first = False


async def _measure(base_url: str, database_url: str, visitors: int, early_share: float, clients: int,
                   admit_per_minute: int, window: float, watchers: int, console: Console,
                   supervisor: Supervisor) -> None:
    pool = await create_pool(database_url, size=4)
    processes = _process_cpu(supervisor)
    spec = bench_event(200)
    spec = type(spec)(**{**spec.__dict__, "on_sale": OnSale(FAR, True, admit_per_minute, 10)})
    event_id = spec.event_id
    async with pool.acquire() as con:
        await create_event(con, spec)
    early_count = int(visitors * early_share)
    names = [f"v{i:07d}" for i in range(visitors)]
    connector = aiohttp.TCPConnector(limit=clients + watchers + 10)
    try:
        async with aiohttp.ClientSession(base_url, connector=connector) as session:
            cpu_before = _cpu_seconds(processes)
            early, early_ms, early_wall = await _join_all(session, event_id, names[:early_count], clients)
            async with session.put(f"/events/{event_id}/onsale", json={
                    "opensAt": datetime.now(UTC).isoformat(), "admitPerMinute": admit_per_minute}) as opened:
                assert opened.status == 200, await opened.text()
            _, late_ms, late_wall = await _join_all(session, event_id, names[early_count:], clients)
            await _wait_placed(pool, event_id, visitors)
            cpu_used = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in _cpu_seconds(processes).items()}

            # Watchers: visitors whose turn comes inside the measured window.
            serving = await pool.fetchval("SELECT serving_position FROM waiting_rooms WHERE event_id = $1", event_id)
            reach = serving + int(admit_per_minute * window / 60)
            # Not the next few seconds' admissions: the streams take a moment to open on a busy machine.
            margin = max(20, admit_per_minute // 12)
            picked = await pool.fetch(
                """SELECT queue_token, position FROM queue_visitors WHERE event_id = $1 AND position > $2
                   AND position <= $3 ORDER BY random() LIMIT $4""", event_id, serving + margin, reach, watchers)
            arrivals: dict[str, float] = {}
            admitted_first: set[str] = set()
            tasks = [asyncio.ensure_future(_watch(session, f"/events/{event_id}/queue/{r['queue_token']}", arrivals,
                                                  r["queue_token"], admitted_first)) for r in picked]
            first = await _serving(pool, event_id)
            await asyncio.sleep(window)
            last = await _serving(pool, event_id)
            if tasks:  # none when every visitor's turn came before the window (a small crowd)
                await asyncio.wait(tasks, timeout=5)
            for task in tasks:
                task.cancel()
            holds = await _holds(session, pool, event_id, early)
        checks = await _invariants(pool, event_id, visitors)
        fairness = await _fairness(pool, event_id, early_count)
        latency = await _admission_latency(pool, event_id, picked, arrivals)
    finally:
        await pool.close()

    table = Table(title="joins", title_justify="left")
    for column in ("phase", "visitors", "joins/s", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for phase, ms, wall in (("before the opening", early_ms, early_wall), ("after the opening", late_ms, late_wall)):
        if ms:
            table.add_row(phase, f"{len(ms):,}", f"{len(ms) / wall:,.0f}", f"{_pct(ms, .5):.1f}",
                          f"{_pct(ms, .99):.1f}", f"{max(ms):.1f}")
    console.print(table)
    console.print(_cpu_table(cpu_used, visitors, early_wall + late_wall))
    console.print(f"fairness of the draw over the {early_count:,} early visitors: {fairness}")
    (t0, s0), (t1, s1) = first, last
    rate = (s1 - s0) / (t1 - t0) * 60
    console.print(f"admission rate over {t1 - t0:.1f} s: [bold]{rate:,.0f}[/] a minute against a target of "
                  f"{admit_per_minute:,} ({rate / admit_per_minute - 1:+.1%})")
    if admitted_first:
        console.print(f"{len(admitted_first)} watchers were admitted before their stream opened (not timed)")
    console.print(f"admission → live status, {len(latency)} of {len(picked)} watchers: " + (
        f"p50 {_pct(latency, .5):.0f} ms, p99 {_pct(latency, .99):.0f} ms, max {max(latency):.0f} ms "
        f"(the admission's commit time to the SSE message's arrival; tick {Settings().queue_tick_seconds:g} s)"
        if latency else "none arrived"))
    checks_table = Table(title="invariants", title_justify="left")
    checks_table.add_column("check")
    checks_table.add_column("value", justify="right")
    for name, value in {**checks, **holds}.items():
        checks_table.add_row(name, str(value))
    console.print(checks_table)
    ok = checks["positions 1..N once each"] and checks["admissions in order"] and holds["holds without admission"] == 0
    console.print("[bold green]invariants hold[/]" if ok else "[bold red]INVARIANT VIOLATED[/]")


def _cpu_table(used: dict[str, float], joins: int, wall: float) -> Table:
    """Where the CPU of the joins went: each process's CPU time from the first join until every join was
    placed, per join and as a share of the machine's cores over the joining time."""
    table = Table(title=f"CPU of the joins ({os.cpu_count()} cores)", title_justify="left")
    for column in ("process", "CPU s", "ms per join", "share of the CPU used"):
        table.add_column(column, justify="left" if column == "process" else "right")
    total = sum(used.values()) or 1.0
    for name, seconds in sorted(used.items(), key=lambda item: -item[1]):
        if seconds >= 0.05:
            table.add_row(name, f"{seconds:.1f}", f"{seconds * 1000 / joins:.3f}", f"{seconds / total:.0%}")
    table.add_row("all", f"{total:.1f}", f"{total * 1000 / joins:.3f}",
                  f"{total / (wall * (os.cpu_count() or 1)):.0%} of the cores")
    return table


async def _serving(pool: asyncpg.Pool, event_id: str) -> tuple[float, int]:
    serving = await pool.fetchval("SELECT serving_position FROM waiting_rooms WHERE event_id = $1", event_id)
    return time.monotonic(), int(serving)


async def _wait_placed(pool: asyncpg.Pool, event_id: str, visitors: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        placed = await pool.fetchval(
            "SELECT count(position) FROM queue_visitors WHERE event_id = $1", event_id)
        if placed >= visitors:
            return
        await asyncio.sleep(0.2)


async def _fairness(pool: asyncpg.Pool, event_id: str, early: int) -> str:
    rows = await pool.fetch(
        "SELECT join_seq, position FROM queue_visitors WHERE event_id = $1 AND join_seq <= $2 ORDER BY join_seq",
        event_id, early)
    if len(rows) < 20:
        return "too few early visitors to test"
    n = len(rows)
    first_tenth = [(r["position"] - 0.5) / n for r in rows[: max(10, n // 10)]]
    d, p_ks = ks_uniform(first_tenth)
    rho, p_rho = spearman([r["join_seq"] for r in rows], [r["position"] for r in rows])
    return (f"KS of the first {len(first_tenth):,} joiners' places against uniform D={d:.4f} p={p_ks:.3f}; "
            f"Spearman rank correlation of join order and place rho={rho:+.4f} p={p_rho:.3f} "
            f"(a fair draw: p-values spread over 0..1, rho near 0)")


async def _admission_latency(pool: asyncpg.Pool, event_id: str, picked: list[asyncpg.Record],
                             arrivals: dict[str, float]) -> list[float]:
    latencies = []
    for row in picked:
        arrived = arrivals.get(row["queue_token"])
        if arrived is None:
            continue
        admitted_at = await pool.fetchval(
            """SELECT admitted_at FROM queue_admissions WHERE event_id = $1 AND first_position <= $2
               AND last_position >= $2""", event_id, row["position"])
        if admitted_at is not None:
            latencies.append((arrived - admitted_at.timestamp()) * 1000)
    return latencies


async def _invariants(pool: asyncpg.Pool, event_id: str, visitors: int) -> dict[str, Any]:
    places = await pool.fetchrow(
        """SELECT count(*) AS n, count(DISTINCT position) AS distinct_places, min(position) AS first,
                  max(position) AS last FROM queue_visitors WHERE event_id = $1""", event_id)
    assert places is not None  # an aggregate always has its row
    admissions = await pool.fetch(
        "SELECT first_position, last_position, admitted_at FROM queue_admissions WHERE event_id = $1 "
        "ORDER BY first_position", event_id)
    in_order = all(a["first_position"] == (admissions[i - 1]["last_position"] + 1 if i else 1)
                   and (i == 0 or a["admitted_at"] >= admissions[i - 1]["admitted_at"])
                   for i, a in enumerate(admissions))
    return {"visitors placed": f"{places['n']:,} of {visitors:,}",
            "positions 1..N once each": places["n"] == places["distinct_places"] == visitors
            and places["first"] == 1 and places["last"] == visitors,
            "admissions in order": in_order,
            "admitted": sum(a["last_position"] - a["first_position"] + 1 for a in admissions)}


async def _holds(session: aiohttp.ClientSession, pool: asyncpg.Pool, event_id: str,
                 early: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Holds asked by admitted visitors with their token, and by waiting ones without and with a borrowed
    one: every hold must belong to an admitted visitor."""
    admitted = await pool.fetch(
        "SELECT v.visitor_id FROM queue_visitors v JOIN waiting_rooms r USING (event_id) "
        "WHERE v.event_id = $1 AND v.position <= r.serving_position ORDER BY v.position LIMIT 20", event_id)
    waiting = await pool.fetch(
        "SELECT v.visitor_id FROM queue_visitors v JOIN waiting_rooms r USING (event_id) "
        "WHERE v.event_id = $1 AND v.position > r.serving_position ORDER BY v.position DESC LIMIT 20", event_id)
    refused = 0
    borrowed = None
    for row in admitted:
        async with session.get(early.get(row["visitor_id"], {}).get("statusUrl") or "/") as answer:
            status = await answer.json(content_type=None) if answer.status == 200 else {}
        token = status.get("accessToken") if isinstance(status, dict) else None
        borrowed = borrowed or token
        if token:
            async with session.post("/bookings", json={"eventId": event_id, "quantity": 1, "userId": row["visitor_id"]},
                                    headers={"X-Queue-Access": token}):
                pass
    for row in waiting:
        for headers in ({}, {"X-Queue-Access": borrowed} if borrowed else {}):
            async with session.post("/bookings", json={"eventId": event_id, "quantity": 1, "userId": row["visitor_id"]},
                                    headers=headers) as answer:
                refused += answer.status == 403
    unadmitted = await pool.fetchval(
        """SELECT count(*) FROM bookings b WHERE b.event_id = $1 AND NOT EXISTS (
               SELECT 1 FROM queue_visitors v JOIN waiting_rooms r USING (event_id)
               WHERE v.event_id = b.event_id AND v.visitor_id = b.user_id AND v.position <= r.serving_position)""",
        event_id)
    held = await pool.fetchval("SELECT count(*) FROM bookings WHERE event_id = $1", event_id)
    return {"holds by admitted visitors": int(held), "holds refused 403 to waiting visitors": refused,
            "holds without admission": int(unadmitted)}
