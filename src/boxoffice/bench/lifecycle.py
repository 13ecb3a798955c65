"""`boxoffice bench lifecycle`: holds that run out together, and payments end to end.

Starts its own platform with a hold of T seconds, places N single-seat holds as fast as the clients can,
confirms C more holds through the payment service, then waits for the N holds to expire and prints how
late each release was (release commit − deadline), the confirmation rate, and where the payments' time went
(between the rows each leaves in the database). Then wrk (a load generator in C) pays holds of a second event
for as long as our client paid, so that the rate does not hang on what our Python client costs.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psutil
from rich.console import Console
from rich.table import Table

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.embedded import free_port
from boxoffice.adapters.postgres import create_pool
from boxoffice.adapters.supervisor import Supervisor
from boxoffice.bench.holds import _cpu_seconds, _pct, _process_cpu, bench_event
from boxoffice.bench.running import fresh_data_dir, own_platform
from boxoffice.bench.wrk_load import WrkPayments, run_wrk_payments, wrk_or_skip
from boxoffice.config import Settings

CARD = "4242424242424242"

T = TypeVar("T")
R = TypeVar("R")


async def _each(items: list[T], clients: int, work: Callable[[T], Awaitable[R]]) -> tuple[list[R], float]:
    results: list[Any] = [None] * len(items)  # each filled in before it returns
    pending = iter(range(len(items)))

    async def client() -> None:
        for i in pending:
            results[i] = await work(items[i])

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return results, time.perf_counter() - started


EMAILS_WAIT_SECONDS = 300.0


async def _hold(http: aiohttp.ClientSession, event_id: str, seat: str) -> dict[str, Any] | None:
    body = {"eventId": event_id, "seatIds": [seat], "userId": f"fan_{seat}"}
    async with http.post("/bookings", json=body) as response:
        return await response.json() if response.status == 201 else None


async def _payments_by_wrk(base_url: str, pool: Any, holds: int, clients: int, seconds: float,
                           processes: dict[str, psutil.Process], console: Console,
                           ) -> tuple[WrkPayments, dict[str, float]] | None:
    """wrk pays holds of a second event for `seconds`; it is given twice as many as our client paid, so that it
    does not run out. Its run and the CPU each process used meanwhile (wrk's under this process)."""
    wrk = wrk_or_skip(console.print)
    if wrk is None:
        return None
    spec = bench_event(holds)
    async with pool.acquire() as con:
        await create_event(con, spec)
    async with aiohttp.ClientSession(base_url, connector=aiohttp.TCPConnector(limit=clients),
                                     timeout=aiohttp.ClientTimeout(total=120)) as http:
        with console.status(f"placing {holds:,} holds for wrk to pay..."):
            placed, _ = await _each([s.seat_id for s in spec.seats()], clients,
                                    lambda seat: _hold(http, spec.event_id, seat))
    bookings = [(b["bookingId"], str(b["amount"])) for b in placed if b]
    before = _cpu_seconds(processes)
    try:
        with console.status(f"wrk pays for {seconds:.0f} s..."):
            run = await asyncio.to_thread(run_wrk_payments, wrk, base_url, bookings, clients, seconds)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        console.print(f"[yellow]the wrk run failed: {exc}[/]")
        return None
    after = _cpu_seconds(processes)
    return run, {name: after[name] - before.get(name, 0.0) for name in after}


# A payment's way, as the rows it leaves show it: each step is timed from the one before (the first from "sent").
_STEPS = (("the booking service asks for the charge (its transaction starts)", "asked"),
          ("payment.requested published", "requested"),
          ("the payment service records the attempt", "attempted"),
          ("the provider's answer is in its ledger", "charged"),
          ("the payment is decided", "decided"),
          ("payment.succeeded published", "succeeded"),
          ("the booking service confirms", "confirmed"),
          ("booking.confirmed published", "announced"),
          ("our client has the answer", "answered"))


async def _steps(pool: Any, event_id: str, answered: dict[str, tuple[float, float]]) -> list[tuple[str, list[float]]]:
    """Per step of a payment, how long it took for each one paid. The embedded broker's outbox rows are kept a
    while after they are published; without them (nothing kept) there is nothing to show."""
    rows = await pool.fetch(
        """WITH published AS (
               SELECT topic, convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'bookingId' AS booking_id,
                      min(created_at) AS created_at, min(published_at) AS published_at
               FROM outbox WHERE key = convert_to($1, 'UTF8') AND published_at IS NOT NULL
                 AND topic = ANY(ARRAY['payment.requested', 'payment.succeeded', 'booking.confirmed'])
               GROUP BY 1, 2)
           SELECT b.booking_id::text AS booking_id,
                  extract(epoch FROM requested.created_at) AS asked,
                  extract(epoch FROM requested.published_at) AS requested,
                  extract(epoch FROM p.created_at) AS attempted,
                  extract(epoch FROM c.created_at) AS charged,
                  extract(epoch FROM p.decided_at) AS decided,
                  extract(epoch FROM succeeded.published_at) AS succeeded,
                  extract(epoch FROM b.decided_at) AS confirmed,
                  extract(epoch FROM confirmed.published_at) AS announced
           FROM bookings b
           JOIN payments p ON p.booking_id = b.booking_id AND p.status = 'succeeded'
           JOIN simulated_provider_charges c ON c.idempotency_key = p.booking_id || ':' || p.payment_id
           JOIN published requested ON requested.topic = 'payment.requested'
                AND requested.booking_id = b.booking_id::text
           JOIN published succeeded ON succeeded.topic = 'payment.succeeded'
                AND succeeded.booking_id = b.booking_id::text
           JOIN published confirmed ON confirmed.topic = 'booking.confirmed'
                AND confirmed.booking_id = b.booking_id::text
           WHERE b.event_id = $1 AND b.status = 'confirmed'""", event_id)
    steps: dict[str, list[float]] = {name: [] for name, _ in _STEPS}
    for row in rows:
        if row["booking_id"] not in answered:
            continue
        times = {column: float(value) for column, value in row.items() if column != "booking_id"}
        times["sent"], times["answered"] = answered[row["booking_id"]]
        start = "sent"
        for name, end in _STEPS:
            steps[name].append((times[end] - times[start]) * 1000)
            start = end
    return [(name, values) for name, values in steps.items() if values]


def _cpu_per_confirmation(used: dict[str, float], confirmed: int) -> str:
    return ", ".join(f"{name} {seconds * 1000 / confirmed:.2f}" for name, seconds in
                     sorted(used.items(), key=lambda item: -item[1]) if seconds > 0)


async def _emails_sent(pool: Any, booking_ids: list[str]) -> tuple[int, Any]:
    """How many of the bookings' confirmation emails went out, and when the last did; waits (bounded) for all."""
    deadline = time.monotonic() + EMAILS_WAIT_SECONDS
    while True:
        sent, last = await pool.fetchrow(
            "SELECT count(*), max(sent_at) FROM notifications_sent WHERE kind = 'confirmation' "
            "AND booking_id = ANY($1::uuid[])", booking_ids)
        if sent >= len(booking_ids) or time.monotonic() > deadline:
            return sent, last
        await asyncio.sleep(0.2)


def run(holds: int, hold_seconds: float, confirms: int, clients: int, console: Console) -> None:
    data_dir = fresh_data_dir()
    settings = Settings(data_dir=data_dir, http_port=free_port(), hold_seconds=hold_seconds,
                        booking_reply_seconds=10, confirm_reply_seconds=30)
    console.print(f"[bold]bench lifecycle[/]: {holds:,} holds of {hold_seconds:g} s left to expire, {confirms:,} "
                  f"holds confirmed, {clients} concurrent clients, simulated payment latency {_latency(settings)} "
                  f"(retryable failures {settings.payment_failure_rate:.0%}), {settings.payment_concurrency} "
                  f"charges in flight; platform in {data_dir}")
    with own_platform(settings, console) as runtime:
        asyncio.run(_measure(runtime, settings.data_path, holds, confirms, clients, console))


def _print_expiry(console: Console, rows: list[Any], hold_wall: float) -> None:
    """How late the holds left to expire were released (`rows`: their bookings as they ended)."""
    late = [float(r["late_ms"]) for r in rows if r["status"] == "expired"]
    if not late:
        console.print(f"hold expiry: {len(rows):,} holds left to expire, {len(late)} expired: nothing to measure")
        return
    deadlines = [r["expires_at"] for r in rows]
    table = Table(title="hold expiry: release commit − deadline", title_justify="left")
    for column in ("holds", "expired", "deadlines spread over", "p50 ms", "p99 ms", "max ms", "early"):
        table.add_column(column, justify="right")
    table.add_row(f"{len(rows):,}", f"{len(late):,}",
                  f"{(max(deadlines) - min(deadlines)).total_seconds():.1f} s ({len(rows) / hold_wall:,.0f}/s)",
                  f"{_pct(late, .5):.1f}", f"{_pct(late, .99):.1f}", f"{max(late):.1f}",
                  str(sum(1 for v in late if v < 0)))
    console.print(table)


def _latency(settings: Settings) -> str:
    p50, p99 = settings.payment_latency_ms, settings.payment_latency_p99_ms
    return f"{p50:g} ms p50, {p99:g} ms p99" if p99 else f"{p50:g} ms every time"


async def _measure(runtime: object, data_path: Path, holds: int, confirms: int, clients: int,
                   console: Console) -> None:
    pool = await create_pool(runtime.database_url, size=4)  # type: ignore[attr-defined]
    spec = bench_event(holds + confirms)
    async with pool.acquire() as con:
        await create_event(con, spec)
    seats = [s.seat_id for s in spec.seats()]
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(runtime.base_url, connector=connector,  # type: ignore[attr-defined]
                                     timeout=aiohttp.ClientTimeout(total=120)) as http:
        async def hold(seat: str) -> dict[str, Any] | None:
            return await _hold(http, spec.event_id, seat)

        answered: dict[str, tuple[float, float]] = {}  # booking id: when its payment was sent and answered

        async def pay(booking: dict[str, Any]) -> tuple[int, float]:
            started, sent_at = time.perf_counter(), time.time()
            body = {"paymentId": f"pay_{booking['bookingId'][:12]}", "amount": booking["amount"], "card": CARD}
            async with http.put(f"/bookings/{booking['bookingId']}/confirm", json=body) as response:
                await response.read()
                answered[booking["bookingId"]] = (sent_at, time.time())
                return response.status, time.perf_counter() - started

        with console.status(f"placing {holds:,} holds..."):
            expiring, hold_wall = await _each(seats[:holds], clients, hold)
        with console.status(f"placing and paying {confirms:,} holds..."):
            to_pay, _ = await _each(seats[holds:], clients, hold)
            processes = _process_cpu(Supervisor(data_path))
            cpu_before = _cpu_seconds(processes)
            paying = [b for b in to_pay if b]
            paid, pay_wall = await _each(paying, clients, pay)
            cpu_used = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in _cpu_seconds(processes).items()}
            paid_at = await pool.fetchval("SELECT clock_timestamp()")
        # Emails are off the buyer's path and may trail the payments: their CPU is counted once all are out.
        confirmed_ids = [b["bookingId"] for b, (status, _) in zip(paying, paid, strict=True) if status == 200]
        with console.status("waiting for the confirmation emails..."):
            emailed, last_email = await _emails_sent(pool, confirmed_ids)
            cpu_with_emails = {name: seconds - cpu_before.get(name, 0.0)
                               for name, seconds in _cpu_seconds(processes).items()}

    booking_ids = [b["bookingId"] for b in expiring if b]
    with console.status("waiting for the holds to run out..."):
        while await pool.fetchval("SELECT count(*) FROM bookings WHERE booking_id = ANY($1::uuid[]) "
                                  "AND status = 'pending'", booking_ids):
            await asyncio.sleep(0.5)
    rows = await pool.fetch(
        "SELECT status, extract(epoch FROM decided_at - expires_at) * 1000 AS late_ms, expires_at "
        "FROM bookings WHERE booking_id = ANY($1::uuid[])", booking_ids)
    still_held = await pool.fetchval(
        "SELECT count(*) FROM seats WHERE event_id = $1 AND seat_id = ANY($2) AND status <> 'AVAILABLE'",
        spec.event_id, seats[:holds])
    booked = await pool.fetchval("SELECT count(*) FROM seats WHERE event_id = $1 AND status = 'BOOKED'",
                                 spec.event_id)
    # The simulated provider's own answer times for these charges, beside the end-to-end figures.
    provider_ms = [float(v) for v in await pool.fetchval(
        "SELECT coalesce(array_agg(c.latency_ms), '{}') FROM simulated_provider_charges c JOIN payments p "
        "ON c.idempotency_key = p.booking_id || ':' || p.payment_id WHERE p.event_id = $1", spec.event_id)]
    charges = await pool.fetchval(
        "SELECT count(*) FROM simulated_provider_charges c JOIN payments p "
        "ON c.idempotency_key = p.booking_id || ':' || p.payment_id WHERE p.event_id = $1", spec.event_id)
    steps = await _steps(pool, spec.event_id, answered)
    by_wrk = await _payments_by_wrk(runtime.base_url, pool, 2 * confirms, clients,  # type: ignore[attr-defined]
                                    max(3.0, pay_wall), processes, console)
    await pool.close()

    _print_expiry(console, rows, hold_wall)

    ok = [seconds for status, seconds in paid if status == 200]
    ms = [s * 1000 for s in ok]
    pay_table = Table(title="confirmations end to end (HTTP → booking → payment → booking → HTTP)",
                      title_justify="left")
    for column in ("client", "confirms", "200", "other", "per second", "p50 ms", "p99 ms", "provider p50 ms",
                   "provider p99 ms", "p50 ÷ provider p50"):
        pay_table.add_column(column, justify="right")
    provider_p50 = _pct(provider_ms, .5)
    pay_table.add_row("ours (Python)", f"{len(paid):,}", f"{len(ok):,}", str(len(paid) - len(ok)),
                      f"{len(ok) / pay_wall:,.0f}", f"{_pct(ms, .5):.1f}", f"{_pct(ms, .99):.1f}",
                      f"{provider_p50:.1f}", f"{_pct(provider_ms, .99):.1f}", f"{_pct(ms, .5) / provider_p50:.2f}×")
    if by_wrk is not None:
        run, _ = by_wrk
        # wrk stops with up to one payment per connection in flight: made, but its answer not counted.
        pay_table.add_row("wrk (C)", f"{run.paid + run.other:,}", f"{run.paid:,}", str(run.other),
                          f"{run.paid / run.seconds:,.0f}" + (" (ran out)" if run.ran_out else ""),
                          f"{run.p50_ms:.1f}", f"{run.p99_ms:.1f}", "", "", f"{run.p50_ms / provider_p50:.2f}×")
    console.print(pay_table)
    if steps:
        step_table = Table(title="where our client's payments spent their time, step by step (ms; published: "
                                 "marked so once Kafka acknowledged it)", title_justify="left")
        for column in ("step", "p50", "p99"):
            step_table.add_column(column, justify="right" if column != "step" else "left")
        for name, values in steps:
            step_table.add_row(name, f"{_pct(values, .5):.1f}", f"{_pct(values, .99):.1f}")
        console.print(step_table)
    if ok:
        console.print(f"CPU ms per confirmation while paying ({pay_wall:.1f} s wall, 2 cores): "
                      f"{_cpu_per_confirmation(cpu_used, len(ok))}")
        trailing = (f"the last {(last_email - paid_at).total_seconds():.1f} s after the last payment"
                    if last_email is not None and last_email > paid_at else "all during the payments")
        console.print(f"confirmation emails: {emailed:,} of {len(ok):,} sent, {trailing}; CPU ms per confirmation "
                      f"with them: {sum(cpu_with_emails.values()) * 1000 / len(ok):.2f} in all (notification "
                      f"{cpu_with_emails.get('notification', 0.0) * 1000 / len(ok):.2f}, mailbox "
                      f"{cpu_with_emails.get('mailbox', 0.0) * 1000 / len(ok):.2f}), against "
                      f"{sum(cpu_used.values()) * 1000 / len(ok):.2f} while paying")
    if by_wrk is not None and by_wrk[0].paid:
        run, wrk_used = by_wrk
        console.print(f"CPU ms per confirmation while wrk paid ({run.seconds:.1f} s; wrk under this process): "
                      f"{_cpu_per_confirmation(wrk_used, run.paid)}")
    console.print(f"seats still held after expiry: {still_held} (must be 0); seats BOOKED: {booked} "
                  f"(must be {len(ok)}); provider charges: {charges} (must be {len(paid)}: one per payment)")
