"""`boxoffice bench lifecycle`: holds that run out together, and payments end to end.

Starts its own platform with a hold of T seconds, places N single-seat holds as fast as the clients can,
confirms C more holds through the payment service, then waits for the N holds to expire and prints how
late each release was (release commit − deadline) and the confirmation rate. Then wrk (a load generator in C)
pays holds of a second event for as long as our client paid, so that the rate does not hang on what our
Python client costs.
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
from boxoffice.bench.wrk_load import WrkPayments, ensure_wrk, run_wrk_payments
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
    wrk = ensure_wrk(console.print)
    if wrk is None:
        console.print("[yellow]wrk is not installed and could not be (apt-get install wrk): its run is skipped[/]")
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
                  f"holds confirmed, {clients} concurrent clients, simulated payment latency "
                  f"{settings.payment_latency_ms:g} ms (p99 {settings.payment_latency_p99_ms or '='} ms, retryable "
                  f"failures {settings.payment_failure_rate:.0%}), {settings.payment_concurrency} charges in flight; "
                  f"platform in {data_dir}")
    with own_platform(settings, console) as runtime:
        asyncio.run(_measure(runtime, settings.data_path, holds, confirms, clients, console))


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

        async def pay(booking: dict[str, Any]) -> tuple[int, float]:
            started = time.perf_counter()
            body = {"paymentId": f"pay_{booking['bookingId'][:12]}", "amount": booking["amount"], "card": CARD}
            async with http.put(f"/bookings/{booking['bookingId']}/confirm", json=body) as response:
                await response.read()
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
    last_deadline = await pool.fetchval("SELECT max(expires_at) FROM bookings WHERE booking_id = ANY($1::uuid[])",
                                        booking_ids)
    with console.status("waiting for the holds to run out..."):
        while await pool.fetchval("SELECT count(*) FROM bookings WHERE booking_id = ANY($1::uuid[]) "
                                  "AND status = 'pending'", booking_ids):
            await asyncio.sleep(0.5)
    rows = await pool.fetch(
        "SELECT status, extract(epoch FROM decided_at - expires_at) * 1000 AS late_ms, expires_at "
        "FROM bookings WHERE booking_id = ANY($1::uuid[])", booking_ids)
    first_deadline = min(r["expires_at"] for r in rows)
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
    by_wrk = await _payments_by_wrk(runtime.base_url, pool, 2 * confirms, clients,  # type: ignore[attr-defined]
                                    max(3.0, pay_wall), processes, console)
    await pool.close()

    late = [float(r["late_ms"]) for r in rows if r["status"] == "expired"]
    table = Table(title="hold expiry: release commit − deadline", title_justify="left")
    for column in ("holds", "expired", "deadlines spread over", "p50 ms", "p99 ms", "max ms", "early"):
        table.add_column(column, justify="right")
    table.add_row(f"{len(booking_ids):,}", f"{len(late):,}",
                  f"{(last_deadline - first_deadline).total_seconds():.1f} s ({len(booking_ids) / hold_wall:,.0f}/s)",
                  f"{_pct(late, .5):.1f}", f"{_pct(late, .99):.1f}", f"{max(late):.1f}",
                  str(sum(1 for v in late if v < 0)))
    console.print(table)

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
