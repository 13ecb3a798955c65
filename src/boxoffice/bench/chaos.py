"""`boxoffice bench chaos`: a mixed crowd (book, pay, decline, cancel, let expire) while services are
SIGKILLed at random moments, then the invariants once everything has settled.

The run is driven by one random seed, printed first, so that a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import orjson

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.supervisor import Supervisor
from boxoffice.bench.holds import bench_event

VICTIMS = ("booking", "payment", "catalog", "realtime", "gateway", "notification")
CARD, DECLINED = "4242424242424242", "4000000000000002"


@dataclass
class Journal:
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    unanswered: int = 0
    kills: list[tuple[float, list[str]]] = field(default_factory=list)
    # Seconds from a SIGKILL to the service's new process beating with consumer lag 0.
    recoveries: list[tuple[str, float]] = field(default_factory=list)


async def _crowd(base_url: str, event_id: str, seats: list[str], rng: random.Random, until: float,
                 journal: Journal) -> None:
    async with aiohttp.ClientSession(base_url, timeout=aiohttp.ClientTimeout(total=15)) as http:
        while time.monotonic() < until:
            wanted = rng.sample(seats, rng.randint(1, 2))
            try:
                async with http.post("/bookings", json={"eventId": event_id, "seatIds": wanted,
                                                        "userId": f"chaos_{rng.randrange(10_000)}"}) as response:
                    body = await response.json()
                    journal.answers.append((response.status, body))
                if response.status == 201:
                    choice = rng.random()
                    booking_id = body["bookingId"]
                    if choice < 0.45:
                        card = DECLINED if rng.random() < 0.2 else CARD
                        async with http.put(f"/bookings/{booking_id}/confirm", json={
                                "paymentId": f"pay_{uuid.uuid4().hex[:10]}", "amount": body["amount"],
                                "card": card}) as paid:
                            await paid.read()
                    elif choice < 0.65:
                        async with http.delete(f"/bookings/{booking_id}") as cancelled:
                            await cancelled.read()
            except (aiohttp.ClientError, TimeoutError, ValueError):
                journal.unanswered += 1  # the gateway died under us: nothing was promised
                await asyncio.sleep(0.2)
            await asyncio.sleep(rng.uniform(0.0, 0.05))


async def _recovered(database_url: str, service: str, old_pid: int, killed_at: float, journal: Journal) -> None:
    con = await asyncpg.connect(database_url)
    try:
        while time.monotonic() - killed_at < 60:
            rows = await con.fetch("SELECT pid, info FROM service_heartbeats WHERE service = $1 "
                                   "AND beat_at > now() - interval '2 seconds'", service)
            if any(r["pid"] != old_pid and not orjson.loads(r["info"]).get("lag", 0) for r in rows):
                journal.recoveries.append((service, time.monotonic() - killed_at))
                return
            await asyncio.sleep(0.1)
    finally:
        await con.close()


async def _killer(data_dir: Any, database_url: str, rng: random.Random, started: float, until: float,
                  journal: Journal) -> None:
    supervisor = Supervisor(data_dir)
    watchers: list[asyncio.Task[None]] = []
    while True:
        await asyncio.sleep(rng.uniform(2.0, 6.0))
        if time.monotonic() >= until:
            await asyncio.gather(*watchers, return_exceptions=True)
            return
        victims = rng.sample(VICTIMS, 2 if rng.random() < 0.3 else 1)
        pids = {name: description for name, state, description in supervisor.status()
                if name in victims and state == "RUNNING"}
        for name, description in pids.items():
            try:
                pid = int(description.split()[1].rstrip(","))
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, ValueError, IndexError):
                continue
            watchers.append(asyncio.create_task(_recovered(database_url, name, pid, time.monotonic(), journal)))
        journal.kills.append((time.monotonic() - started, sorted(pids)))


async def _settled(con: asyncpg.Connection, base_url: str, stale_after: float) -> str | None:
    """None once everything is quiet, else what is still moving."""
    rows = await con.fetch("SELECT DISTINCT ON (service) service, info, extract(epoch FROM now() - beat_at) AS age "
                           "FROM service_heartbeats ORDER BY service, beat_at DESC")
    for r in rows:
        if r["age"] > stale_after:
            return f"{r['service']} not beating"
        if orjson.loads(r["info"]).get("lag", 0):
            return f"{r['service']} lagging"
    if await con.fetchval("SELECT count(*) FROM bookings WHERE status IN ('pending', 'paying') "
                          "AND expires_at < now() - interval '1 second'"):
        return "holds past their deadline"
    if await con.fetchval("SELECT count(*) FROM outbox"):
        return "outbox not drained"
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{base_url}/health") as response:
            if (await response.json())["status"] != "ok":
                return "health degraded"
    except (aiohttp.ClientError, ValueError, KeyError):
        return "gateway not answering"
    return None


async def _live_snapshot(base_url: str, event_id: str) -> dict[str, str]:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/events/{event_id}/live") as response:
        async for line in response.content:
            if line.startswith(b"data: "):
                return {s["seatId"]: s["status"] for s in orjson.loads(line[6:])["seats"]}
    return {}


async def _emails_per_booking(mailbox_url: str | None) -> dict[str, set[str]]:
    """Distinct Message-IDs of confirmation emails per booking id (a resend after a crash is the same email)."""
    if not mailbox_url:
        return {}
    async with aiohttp.ClientSession() as http, http.get(f"{mailbox_url}/messages?limit=1000000") as response:
        messages = await response.json()
    found: dict[str, set[str]] = {}
    for message in messages:
        message_id = str(message.get("messageId") or "")
        if message_id.startswith("<confirmation."):
            found.setdefault(message_id.split(".", 1)[1].split("@", 1)[0], set()).add(message_id)
    return found


async def invariants(con: asyncpg.Connection, base_url: str, event_id: str, journal: Journal,
                     mailbox_url: str | None) -> dict[str, int]:
    accepted = [body.get("requestId") for status, body in journal.answers if status in (201, 202, 409)]
    decided = {r["request_id"] for r in await con.fetch(
        "SELECT request_id FROM booking_requests WHERE request_id = ANY($1)", accepted)}
    seat_map: dict[str, str] = {r["seat_id"]: r["status"] for r in await con.fetch(
        "SELECT seat_id, status FROM seats WHERE event_id = $1", event_id)}
    owners = {r["seat_id"]: r["status"] for r in await con.fetch(
        """SELECT bs.seat_id, b.status FROM booking_seats bs JOIN bookings b USING (booking_id)
           WHERE bs.event_id = $1 AND bs.live""", event_id)}
    expected = {seat: {"pending": "RESERVED", "paying": "RESERVED", "confirmed": "BOOKED"}.get(owners.get(seat, ""),
                                                                                             "AVAILABLE")
                for seat in seat_map}
    counts = await con.fetchrow("SELECT available, reserved, booked FROM event_availability WHERE event_id = $1",
                                event_id)
    assert counts is not None, f"no availability row for {event_id}"
    tally = {s: list(seat_map.values()).count(s) for s in ("AVAILABLE", "RESERVED", "BOOKED")}
    charges = await con.fetch(
        """SELECT b.booking_id,
                  (SELECT count(*) FROM payments p WHERE p.booking_id = b.booking_id AND p.status = 'succeeded')
                      AS succeeded,
                  (SELECT count(*) FROM simulated_provider_charges c
                    WHERE c.idempotency_key LIKE b.booking_id::text || ':%' AND c.approved) AS charged
           FROM bookings b WHERE b.event_id = $1 AND b.status = 'confirmed'""", event_id)
    emails = await _emails_per_booking(mailbox_url)
    live = await _live_snapshot(base_url, event_id)
    return {
        "seats in two live bookings": await con.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM booking_seats WHERE event_id = $1 AND live "
            "GROUP BY seat_id HAVING count(*) > 1) twice", event_id),
        "accepted requests without an outcome": len([r for r in accepted if r not in decided]),
        "seats whose status disagrees with the bookings": sum(1 for s in seat_map if seat_map[s] != expected[s]),
        "confirmed bookings without exactly one charge": sum(
            1 for c in charges if c["succeeded"] != 1 or c["charged"] != 1),
        "confirmed bookings without exactly one email": sum(
            1 for c in charges if len(emails.get(str(c["booking_id"]), ())) != 1) if mailbox_url else -1,
        "catalog counts off by": abs(counts["available"] - tally["AVAILABLE"]) + abs(
            counts["reserved"] - tally["RESERVED"]) + abs(counts["booked"] - tally["BOOKED"]),
        "live snapshot seats that disagree": sum(1 for s in seat_map if live.get(s) != seat_map[s]),
    }


async def chaos(base_url: str, database_url: str, data_dir: Any, mailbox_url: str | None, seconds: float,
                seed: int, clients: int = 12, settle_timeout: float = 90.0,
                log: Any = print) -> tuple[dict[str, int], Journal, dict[str, Any]]:
    rng = random.Random(seed)
    con = await asyncpg.connect(database_url)
    try:
        spec = bench_event(300)
        await create_event(con, spec)
        seats = [s.seat_id for s in spec.seats()]
        journal = Journal()
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(
            _killer(data_dir, database_url, random.Random(rng.random()), started, until, journal),
            *(_crowd(base_url, spec.event_id, seats, random.Random(rng.random()), until, journal)
              for _ in range(clients)))
        settle_started = time.monotonic()
        while (moving := await _settled(con, base_url, 5.0)) is not None:
            if time.monotonic() - settle_started > settle_timeout:
                log(f"not settled after {settle_timeout:.0f} s: {moving}")
                break
            await asyncio.sleep(0.5)
        unsettled = int(moving is not None)
        outcomes: dict[str, int] = {r["status"]: r["count"] for r in await con.fetch(
            "SELECT status, count(*) FROM bookings WHERE event_id = $1 GROUP BY status", spec.event_id)}
        stats = {"settled in s": round(time.monotonic() - settle_started, 1), "bookings": outcomes,
                 "answers": len(journal.answers), "unanswered (gateway killed)": journal.unanswered,
                 "by status": {s: sum(1 for a, _ in journal.answers if a == s)
                               for s in sorted({a for a, _ in journal.answers})},
                 "kill to lag 0, s (median / max)": {
                     service: (round(sorted(times)[len(times) // 2], 1), round(max(times), 1))
                     for service in sorted({name for name, _ in journal.recoveries})
                     for times in [[t for n, t in journal.recoveries if n == service]]}}
        # Lag 0 means fetched, not yet handled: the views are eventually consistent, so the checks are
        # repeated until they hold or a deadline passes, and the last values are reported.
        check_deadline = time.monotonic() + 30
        while True:
            results = await invariants(con, base_url, spec.event_id, journal, mailbox_url)
            if all(v <= 0 for v in results.values()) or time.monotonic() > check_deadline:
                break
            await asyncio.sleep(1.0)
        # Settled means: every service beating, consumer lag 0, no hold past its deadline, outbox drained.
        results["not settled (lag, holds past deadline, outbox)"] = unsettled
        return results, journal, stats
    finally:
        await con.close()


def run(seconds: float, seed: int | None, console: Any) -> bool:
    """Starts its own platform (holds of 3 s), runs the chaos, prints kills and invariants."""
    import tempfile
    from pathlib import Path

    from rich.table import Table

    from boxoffice import platform
    from boxoffice.adapters.embedded import free_port
    from boxoffice.config import Settings

    seed = seed if seed is not None else random.randrange(1_000_000)
    data_dir = Path(tempfile.mkdtemp(prefix="boxoffice-chaos-"))
    settings = Settings(data_dir=data_dir, http_port=free_port(), hold_seconds=3, payment_latency_ms=50)
    console.print(f"[bold]bench chaos[/]: seed {seed} (replay with --seed {seed}), {seconds:g} s of book / pay / "
                  f"decline / cancel / expire while {', '.join(VICTIMS)} are SIGKILLed; platform in {data_dir}")
    with console.status("starting the platform..."):
        runtime = platform.up(settings)
    try:
        with console.status("running..."):
            results, journal, stats = asyncio.run(chaos(
                runtime.base_url, runtime.database_url, settings.data_path, runtime.mailbox_url, seconds, seed,
                log=console.print))
    finally:
        with console.status("stopping the platform..."):
            platform.down(settings)
    console.print("kills: " + "; ".join(f"{t:.1f} s {'+'.join(names)}" for t, names in journal.kills))
    console.print(f"traffic: {stats}")
    table = Table("invariant", "value", title="after settling", title_justify="left")
    ok = True
    for name, value in results.items():
        good = value == 0
        ok &= good or value == -1
        table.add_row(name, f"[{'green' if good else 'red'}]{value}[/]")
    console.print(table)
    console.print("[bold green]all invariants hold[/]" if ok else "[bold red]INVARIANT VIOLATED[/]")
    return ok
