"""`boxoffice bench holds`: a flash crowd on one event, end to end and straight against PostgreSQL.

Starts its own platform (embedded broker and PostgreSQL, a temporary data directory), creates a bench
event, fires the crowd over HTTP, checks the invariants, then makes the same decisions against the same
PostgreSQL without Kafka as the baseline, and prints both with the CPU each process used. Then the same kind
of crowd again from wrk (a load generator in C) on a third event, so that the end-to-end figures do not
depend on what our Python client costs.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import asyncpg
import psutil
from rich.console import Console
from rich.table import Table

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.embedded import free_port
from boxoffice.adapters.postgres import create_pool
from boxoffice.adapters.supervisor import Supervisor
from boxoffice.bench.running import fresh_data_dir, own_platform
from boxoffice.bench.wrk_load import WrkRun, run_wrk, wrk_or_skip
from boxoffice.config import Settings
from boxoffice.domain.catalog import EventSpec, PriceCategory, SeatRow, row_labels

SEATS_PER_ROW = 50


@dataclass
class Outcome:
    status: int
    seconds: float
    seats: list[str]
    held: list[str] = field(default_factory=list)
    publish_ms: float | None = None
    decision_ms: float | None = None
    code: str | None = None  # the refusal's code


def bench_event(seats: int) -> EventSpec:
    rows = (seats + SEATS_PER_ROW - 1) // SEATS_PER_ROW
    labels = row_labels(rows)
    return EventSpec(
        f"bench_{uuid.uuid4().hex[:10]}", "Benchmark on-sale", "Bench Arena", "Nowhere",
        datetime(2030, 1, 1, tzinfo=UTC), "USD",
        (PriceCategory("a", "A", Decimal("120.00")), PriceCategory("b", "B", Decimal("60.00"))),
        tuple(SeatRow(label, "Main", "a" if i < rows // 2 else "b",
                      min(SEATS_PER_ROW, seats - i * SEATS_PER_ROW)) for i, label in enumerate(labels)),
    )


def crowd(spec: EventSpec, requests: int, max_seats: int, seed: int) -> list[list[str]]:
    """Neighbouring seats, as people book them; popular rows near the front get more requests."""
    rng = random.Random(seed)
    rows = [[s.seat_id for s in spec.seats() if s.row == row.label] for row in spec.rows]
    wanted = []
    for _ in range(requests):
        row = rows[min(int(rng.expovariate(3 / len(rows))), len(rows) - 1)]
        count = rng.randint(1, max_seats)
        start = rng.randrange(0, len(row) - count + 1)
        wanted.append(row[start:start + count])
    return wanted


def _server_timing(header: str | None) -> tuple[float | None, float | None]:
    if not header:
        return None, None
    parts = dict(p.strip().split(";dur=") for p in header.split(",") if ";dur=" in p)
    return float(parts.get("publish", "nan")), float(parts.get("decision", "nan"))


async def fire_http(base_url: str, event_id: str, wanted: list[list[str]], clients: int) -> tuple[list[Outcome], float]:
    return await fire_bodies(base_url, [{"eventId": event_id, "seatIds": w} for w in wanted], clients)


async def fire_bodies(base_url: str, bodies: list[dict[str, object]], clients: int) -> tuple[list[Outcome], float]:
    """`POST /bookings` with each body (and the client's userId), `clients` at a time in a closed loop."""
    outcomes: list[Outcome | None] = [None] * len(bodies)
    next_index = iter(range(len(bodies)))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base_url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def client(user: int) -> None:
            for i in next_index:
                body = {**bodies[i], "userId": f"fan_{user}"}
                started = time.perf_counter()
                try:
                    async with session.post("/bookings", json=body) as response:
                        answer = await response.json()
                        status, timing = response.status, response.headers.get("Server-Timing")
                except (aiohttp.ClientError, TimeoutError):
                    status, answer, timing = 0, {}, None
                asked = bodies[i].get("seatIds")
                outcome = Outcome(status, time.perf_counter() - started, list(asked) if isinstance(asked, list) else [],
                                  answer.get("seatIds", []) if status == 201 else [])
                outcome.publish_ms, outcome.decision_ms = _server_timing(timing)
                if status != 201 and isinstance(answer, dict):
                    outcome.code = answer.get("code")
                outcomes[i] = outcome

        started = time.perf_counter()
        await asyncio.gather(*(client(u) for u in range(clients)))
    return [o for o in outcomes if o is not None], time.perf_counter() - started


async def fire_postgres(pool: asyncpg.Pool, event_id: str, wanted: list[list[str]], clients: int,
                        ) -> tuple[list[Outcome], float]:
    """One transaction per request: conditional update of the sorted seats, then the booking rows."""
    outcomes: list[Outcome | None] = [None] * len(wanted)
    next_index = iter(range(len(wanted)))

    async def client(user: int) -> None:
        for i in next_index:
            seats = sorted(wanted[i])
            booking_id = uuid.uuid4()
            started = time.perf_counter()
            async with pool.acquire() as con:
                tx = con.transaction()
                await tx.start()
                updated = await con.execute(
                    """UPDATE seats SET status = 'RESERVED', booking_id = $3
                       WHERE event_id = $1 AND seat_id = ANY($2) AND status = 'AVAILABLE'""",
                    event_id, seats, booking_id)
                if int(updated.split()[-1]) != len(seats):
                    await tx.rollback()
                    status = 409
                else:
                    await con.execute(
                        """INSERT INTO bookings (booking_id, request_id, event_id, user_id, status, seat_ids, amount,
                                                 currency, expires_at)
                           VALUES ($1, $2, $3, $4, 'pending', $5, 0, 'USD', now() + interval '10 minutes')""",
                        booking_id, f"baseline-{booking_id}", event_id, f"fan_{user}", seats)
                    await con.executemany(
                        "INSERT INTO booking_seats (booking_id, event_id, seat_id) VALUES ($1, $2, $3)",
                        [(booking_id, event_id, s) for s in seats])
                    await tx.commit()
                    status = 201
            outcomes[i] = Outcome(status, time.perf_counter() - started, seats, seats if status == 201 else [])

    started = time.perf_counter()
    await asyncio.gather(*(client(u) for u in range(clients)))
    return [o for o in outcomes if o is not None], time.perf_counter() - started


async def invariants(pool: asyncpg.Pool, event_id: str, outcomes: list[Outcome]) -> dict[str, object]:
    held = [s for o in outcomes if o.status == 201 for s in o.held]
    reserved = {r["seat_id"] for r in await pool.fetch(
        "SELECT seat_id FROM seats WHERE event_id = $1 AND status <> 'AVAILABLE'", event_id)}
    live = await pool.fetchval(
        "SELECT count(*) FROM booking_seats WHERE event_id = $1 AND live", event_id)
    return {
        "seats in two 201 answers": len(held) - len(set(held)),
        "seat map matches the 201 answers": reserved == set(held),
        "live booking rows = seats held": live == len(held),
        "requests without a final answer": sum(1 for o in outcomes if o.status not in (201, 409)),
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _row(name: str, outcomes: list[Outcome], wall: float) -> list[str]:
    ms = [o.seconds * 1000 for o in outcomes]
    decided = sum(1 for o in outcomes if o.status in (201, 409))
    return [name, str(len(outcomes)), f"{sum(o.status == 201 for o in outcomes)}",
            f"{sum(o.status == 409 for o in outcomes)}", f"{decided / wall:,.0f}",
            f"{_pct(ms, .5):.1f}", f"{_pct(ms, .95):.1f}", f"{_pct(ms, .99):.1f}", f"{max(ms):.1f}"]


def _process_cpu(supervisor: Supervisor) -> dict[str, psutil.Process]:
    processes = {}
    for name, _state, description in supervisor.status():
        if description.startswith("pid "):
            try:
                processes[name] = psutil.Process(int(description.split()[1].rstrip(",")))
            except psutil.Error:
                continue
    processes["load generator (this process)"] = psutil.Process()
    return processes


def _cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    seconds = {}
    for name, process in processes.items():
        try:
            times = process.cpu_times()
            seconds[name] = times.user + times.system + sum(
                c.cpu_times().user + c.cpu_times().system for c in process.children(recursive=True))
        except psutil.Error:
            seconds[name] = 0.0
    return seconds


def _per_decision(used: dict[str, float], decided: int) -> str:
    gateway = sum(seconds for name, seconds in used.items() if name.startswith("gateway"))
    return f"{gateway * 1000 / decided:.3f} ms" if decided else "-"


async def _by_wrk(pool: asyncpg.Pool, base_url: str, seats: int, max_seats: int, clients: int, seconds: float,
                  seed: int, processes: dict[str, psutil.Process], console: Console,
                  ) -> tuple[WrkRun, dict[str, float], dict[str, object]] | None:
    """The crowd from wrk on a third event of the same size, for as long as our client's run took."""
    wrk = wrk_or_skip(console.print)
    if wrk is None:
        return None
    spec = bench_event(seats)
    async with pool.acquire() as con:
        await create_event(con, spec)
    rows = [row.label for row in spec.rows if row.seats == SEATS_PER_ROW] or [spec.rows[0].label]
    per_row = min(row.seats for row in spec.rows if row.label in rows)
    before = _cpu_seconds(processes)
    try:
        run = await asyncio.to_thread(run_wrk, wrk, base_url, spec.event_id, rows, per_row,
                                      min(max_seats, per_row), clients, seconds, seed)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        console.print(f"[yellow]the wrk run failed: {exc}[/]")
        return None
    after = _cpu_seconds(processes)
    held = {r["seat_id"] for r in await pool.fetch(
        "SELECT seat_id FROM seats WHERE event_id = $1 AND status <> 'AVAILABLE'", spec.event_id)}
    live = await pool.fetchval("SELECT count(*) FROM booking_seats WHERE event_id = $1 AND live", spec.event_id)
    booked = await pool.fetchval("SELECT count(*) FROM bookings WHERE event_id = $1", spec.event_id)
    # wrk stops with up to one request per connection in flight: decided, but its answer not counted.
    checks: dict[str, object] = {
        f"holds granted after wrk stopped reading (its requests in flight, 0 to {clients})": booked - run.created,
        "live booking rows = seats held": live == len(held)}
    return run, {name: after[name] - before.get(name, 0.0) for name in after}, checks


def run(requests: int, clients: int, seats: int, max_seats: int, seed: int, console: Console) -> None:
    data_dir = fresh_data_dir()
    settings = Settings(data_dir=data_dir, http_port=free_port(), booking_reply_seconds=10)
    console.print(f"[bold]bench holds[/]: {requests:,} requests from {clients} concurrent clients for "
                  f"{seats:,} seats (1–{max_seats} neighbouring seats each, seed {seed}); platform in {data_dir}")
    with own_platform(settings, console) as runtime:
        asyncio.run(_measure(settings, runtime, requests, clients, seats, max_seats, seed, console))


async def _measure(settings: Settings, runtime: object, requests: int, clients: int, seats: int, max_seats: int,
                   seed: int, console: Console) -> None:
    pool = await create_pool(runtime.database_url, size=16)  # type: ignore[attr-defined]
    try:
        spec, baseline_spec = bench_event(seats), bench_event(seats)
        async with pool.acquire() as con:
            await create_event(con, spec)
            await create_event(con, baseline_spec)
        wanted = crowd(spec, requests, max_seats, seed)
        baseline_wanted = [[s.replace(spec.event_id, baseline_spec.event_id) for s in w] for w in wanted]

        # A short warm-up on another event: connections, prepared statements, partition assignment.
        warm = bench_event(200)
        async with pool.acquire() as con:
            await create_event(con, warm)
        await fire_http(runtime.base_url, warm.event_id, crowd(warm, 300, 2, seed), 50)  # type: ignore[attr-defined]

        processes = _process_cpu(Supervisor(settings.data_path))
        before = _cpu_seconds(processes)
        outcomes, wall = await fire_http(runtime.base_url, spec.event_id, wanted, clients)  # type: ignore[attr-defined]
        after = _cpu_seconds(processes)
        checks = await invariants(pool, spec.event_id, outcomes)
        base_outcomes, base_wall = await fire_postgres(pool, baseline_spec.event_id, baseline_wanted, clients)
        base_checks = await invariants(pool, baseline_spec.event_id, base_outcomes)
        by_wrk = await _by_wrk(pool, runtime.base_url, seats, max_seats, clients, wall, seed,  # type: ignore[attr-defined]
                               processes, console)
    finally:
        await pool.close()

    table = Table(title="hold decisions", title_justify="left")
    for column in ("path", "requests", "201", "409", "decisions/s", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right" if column != "path" else "left")
    table.add_row(*_row("end to end", outcomes, wall))
    table.add_row(*_row("raw PostgreSQL", base_outcomes, base_wall))
    if by_wrk is not None:
        run, _cpu, _checks = by_wrk
        table.add_row("end to end, from wrk (C)", f"{run.decided + run.other:,}", str(run.created), str(run.refused),
                      f"{run.decided / run.seconds:,.0f}", f"{run.p50_ms:.1f}", "", f"{run.p99_ms:.1f}", "")
    console.print(table)
    console.print("  end to end: HTTP → gateway → Kafka → booking (batched, one transaction per batch) → "
                  "PostgreSQL → outbox → Kafka → gateway → HTTP\n"
                  "  raw PostgreSQL: the same requests, one transaction each (conditional update of the sorted "
                  f"seats, booking rows), {clients} clients over 16 connections, no Kafka, no HTTP")
    e2e_rate = sum(o.status in (201, 409) for o in outcomes) / wall
    base_rate = sum(o.status in (201, 409) for o in base_outcomes) / base_wall
    console.print(f"end to end / raw PostgreSQL throughput: [bold]{e2e_rate / base_rate:.2f}[/]; "
                  f"wall time {wall:.2f} s vs {base_wall:.2f} s")
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    decided = sum(o.status in (201, 409) for o in outcomes)
    console.print(f"gateway CPU per decision (goal ≤ 0.12 ms): [bold]{_per_decision(used, decided)}[/] "
                  "with our client")
    if by_wrk is not None:
        run, wrk_used, wrk_checks = by_wrk
        ratio = run.decided / run.seconds / base_rate
        console.print(f"from wrk: end to end / raw PostgreSQL throughput [bold]{ratio:.2f}[/]; "
                      f"gateway CPU per decision [bold]{_per_decision(wrk_used, run.decided)}[/]; "
                      f"{run.other} other answers, {run.timeouts} timeouts; invariants: "
                      + ", ".join(f"{name} {value}" for name, value in wrk_checks.items()))

    publish = [o.publish_ms for o in outcomes if o.publish_ms is not None]
    decision = [o.decision_ms for o in outcomes if o.decision_ms is not None]
    if publish:
        console.print(f"inside the gateway (Server-Timing, median / p99): publish to Kafka "
                      f"{statistics.median(publish):.1f} / {_pct(publish, .99):.1f} ms, wait for the decision "
                      f"{statistics.median(decision):.1f} / {_pct(decision, .99):.1f} ms")
    cpu = Table(title=f"CPU seconds during the end-to-end run ({wall:.1f} s wall, 2 cores = {2 * wall:.1f} s)",
                title_justify="left")
    cpu.add_column("process")
    cpu.add_column("CPU s", justify="right")
    cpu.add_column("share", justify="right")
    total = sum(used.values()) or 1.0
    for name, seconds in sorted(used.items(), key=lambda item: -item[1]):
        cpu.add_row(name, f"{seconds:.2f}", f"{seconds / total:.0%}")
    console.print(cpu)

    checks_table = Table(title="invariants", title_justify="left")
    checks_table.add_column("check")
    checks_table.add_column("end to end", justify="right")
    checks_table.add_column("raw PostgreSQL", justify="right")
    for name, value in checks.items():
        checks_table.add_row(name, str(value), str(base_checks[name]))
    console.print(checks_table)
    ok = (checks["seats in two 201 answers"] == 0 and checks["seat map matches the 201 answers"]
          and checks["requests without a final answer"] == 0)
    console.print("[bold green]invariants hold[/]" if ok else "[bold red]INVARIANT VIOLATED[/]")
