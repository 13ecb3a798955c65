"""`boxoffice bench chaos --waiting-room`: visitors join an event's waiting room, before and after its opening,
and the admitted ones hold seats, while the waitingroom service and the gateway are SIGKILLed at random moments.
Then, once everything has settled: every join that was answered has its place (the answered one, if it said
one), positions 1..N are given once each, admissions are contiguous and in order and never ahead of the rate,
the serving position moved on after the last kill of the waitingroom service, and nobody held without an
admission. One random seed drives the run, so that a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.supervisor import Supervisor
from boxoffice.bench.chaos import _connect, _read_runtime, _settled
from boxoffice.bench.faults import ChaosError, Programs
from boxoffice.bench.holds import bench_event
from boxoffice.bench.running import fresh_data_dir, own_platform
from boxoffice.domain.waiting_room import OnSale

VICTIMS = ("waitingroom", "gateway")
FAR = datetime(2030, 1, 1, tzinfo=UTC)
REQUEST_SECONDS = 10.0  # the longest any one request of the bench waits for its answer
QUERY_SECONDS = 30.0  # the same for a query of the checks
# The opening is asked again, if need be, until this long after the traffic: a gateway killed under it may take
# a while to come back on a loaded machine.
OPEN_GRACE_SECONDS = 30.0


@dataclass
class QueueJournal:
    joins: dict[str, dict[str, Any]] = field(default_factory=dict)  # visitor → their last answered join
    rejoins_elsewhere: int = 0  # a second join answered with another token or place
    unanswered: int = 0  # the gateway died under the request: nothing was promised
    kills: list[tuple[float, str]] = field(default_factory=list)
    serving: list[tuple[float, int]] = field(default_factory=list)  # (seconds since the start, serving position)
    holds: int = 0
    opened: bool = False
    opening_answers: list[str] = field(default_factory=list)  # each PUT .../onsale of the opening: status or error


def _http(base_url: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url, timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS))


async def _visitors(base_url: str, event_id: str, name: str, rng: random.Random, until: float,
                    journal: QueueJournal) -> None:
    async with _http(base_url) as http:
        n = 0
        while time.monotonic() < until:
            again = rng.random() < 0.1 and journal.joins
            visitor = rng.choice(sorted(journal.joins)) if again else f"{name}_{n}"
            n += 0 if again else 1
            try:
                async with http.post(f"/events/{event_id}/queue", json={"visitorId": visitor}) as answer:
                    body = await answer.json()
                    if answer.status in (200, 201, 202):
                        before = journal.joins.get(visitor)
                        if before is not None and _elsewhere(before, body):
                            journal.rejoins_elsewhere += 1
                        if before is None or body["position"] is not None:
                            journal.joins[visitor] = body
            except (aiohttp.ClientError, TimeoutError, ValueError):
                journal.unanswered += 1
                await asyncio.sleep(0.2)
            await asyncio.sleep(rng.uniform(0.01, 0.08))


def _elsewhere(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Two answers to one visitor's joins that disagree (a place not yet given is no disagreement)."""
    if before["queueToken"] != after["queueToken"]:
        return True
    return None not in (before["position"], after["position"]) and before["position"] != after["position"]


async def _hold_if_admitted(http: aiohttp.ClientSession, event_id: str, visitor: str,
                            journal: QueueJournal) -> bool:
    """An admitted visitor holds one seat with their access token; False if not admitted (yet)."""
    async with http.get(journal.joins[visitor]["statusUrl"]) as answer:
        seen = await answer.json()
    if answer.status != 200 or seen["status"] != "admitted":
        return False
    async with http.post("/bookings", json={"eventId": event_id, "quantity": 1, "userId": visitor},
                         headers={"X-Queue-Access": seen["accessToken"]}) as held:
        await held.read()
        journal.holds += int(held.status in (201, 202))
    return True


async def _buyers(base_url: str, event_id: str, rng: random.Random, until: float, journal: QueueJournal,
                  tried: set[str]) -> None:
    """Admitted visitors hold one seat each, during the faults."""
    async with _http(base_url) as http:
        while time.monotonic() < until:
            await asyncio.sleep(rng.uniform(0.05, 0.15))
            untried = sorted(set(journal.joins) - tried)
            if not untried:
                continue
            visitor = rng.choice(untried[:50])
            try:
                if await _hold_if_admitted(http, event_id, visitor, journal):
                    tried.add(visitor)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                journal.unanswered += 1
                await asyncio.sleep(0.2)


async def _last_buyers(base_url: str, event_id: str, journal: QueueJournal, tried: set[str], count: int,
                       timeout: float) -> None:
    """Once settled, up to `count` more admitted visitors hold: on a slow machine the faults may have left
    little time to admit anyone and to hold. No visitor is asked after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    held = 0
    async with _http(base_url) as http:
        while held < count and time.monotonic() < deadline and set(journal.joins) - tried:
            for visitor in sorted(set(journal.joins) - tried):
                if held >= count or time.monotonic() >= deadline:
                    break
                try:
                    if await _hold_if_admitted(http, event_id, visitor, journal):
                        tried.add(visitor)
                        held += 1
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    await asyncio.sleep(0.5)
            await asyncio.sleep(0.5)  # the next admissions


async def _open(base_url: str, event_id: str, rate: int, at: float, give_up_at: float,
                journal: QueueJournal) -> None:
    """The organiser opens the sale at `at`. A request the gateway died under (or answered too slowly) is sent
    again unchanged: it may have been applied, and once the room has opened, another opensAt is refused for
    good (409 sale_open). ChaosError if no opening is confirmed by `give_up_at` (time.monotonic())."""
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    on_sale = {"opensAt": datetime.now(UTC).isoformat(), "waitingRoom": True, "admitPerMinute": rate,
               "admissionMinutes": 10}
    last = "none"
    async with _http(base_url) as http:
        while True:
            try:
                async with http.put(f"/events/{event_id}/onsale", json=on_sale) as answer:
                    last = f"{answer.status} {(await answer.text())[:300]}"
                    journal.opened = answer.status in (200, 202)
                    journal.opening_answers.append(str(answer.status))
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = repr(exc)
                journal.opening_answers.append(type(exc).__name__)
            if journal.opened:
                return
            if time.monotonic() >= give_up_at:
                raise ChaosError(f"the sale of {event_id} was not opened: PUT /events/{event_id}/onsale asked "
                                 f"{time.monotonic() - at:.0f} s without success; last answer: {last}")
            await asyncio.sleep(0.5)


async def _watch_serving(base_url: str, event_id: str, started: float, stop: asyncio.Event,
                         journal: QueueJournal) -> None:
    async with _http(base_url) as http:
        while not stop.is_set():
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
                async with http.get(f"/events/{event_id}") as answer:
                    if answer.status == 200:
                        queue = (await answer.json())["queue"]
                        journal.serving.append((time.monotonic() - started, int(queue["servingPosition"])))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)


async def _kill(data_dir: Path, rng: random.Random, started: float, until: float, journal: QueueJournal,
                spacing: tuple[float, float]) -> None:
    """A SIGKILL every `spacing` seconds: each victim once first, in a random order, then at random."""
    programs = Programs(Supervisor(data_dir))
    first_round = rng.sample(VICTIMS, len(VICTIMS))
    while True:
        await asyncio.sleep(rng.uniform(*spacing))
        if time.monotonic() >= until:
            return
        first = bool(first_round)
        victim = first_round.pop(0) if first else rng.choice(VICTIMS)
        pid = (await programs.pids([victim])).get(victim)
        if pid is None:  # not back from the previous kill yet
            if first:
                first_round.insert(0, victim)  # every victim is killed at least once
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        journal.kills.append((time.monotonic() - started, victim))


async def _together(deadline: float, parts: dict[str, Coroutine[Any, Any, None]]) -> None:
    """Runs the named parts to their end. The first to fail cancels the others and its error is raised; parts
    still running at `deadline` (time.monotonic()) are cancelled, and a ChaosError names them."""
    tasks = {asyncio.ensure_future(part): name for name, part in parts.items()}
    try:
        done, running = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()),
                                           return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
        if running:
            raise ChaosError("still running when the traffic should long have ended: "
                             + ", ".join(sorted(tasks[task] for task in running)))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def queue_chaos(base_url: str, database_url: str, data_dir: Any, seconds: float, seed: int,
                      rate: int = 300, clients: int = 3, spacing: tuple[float, float] = (2.0, 6.0),
                      settle_timeout: float = 90.0, log: Any = print) -> tuple[dict[str, int], QueueJournal]:
    """`seconds` of joins and holds with kills; the room opens at a quarter of them, admitting `rate` a minute."""
    _read_runtime(Path(data_dir))
    rng = random.Random(seed)
    spec = bench_event(300)
    spec = type(spec)(**{**spec.__dict__, "on_sale": OnSale(FAR, True, rate, 10)})
    con = await asyncpg.connect(database_url)
    try:
        await create_event(con, spec)
    finally:
        await con.close()
    event_id = spec.event_id
    journal = QueueJournal()
    started = time.monotonic()
    until = started + seconds
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_serving(base_url, event_id, started, stop, journal))
    tried: set[str] = set()
    try:
        await _together(until + OPEN_GRACE_SECONDS + REQUEST_SECONDS, {
            "kills": _kill(Path(data_dir), random.Random(rng.random()), started, until, journal, spacing),
            "the opening": _open(base_url, event_id, rate, started + seconds / 4, until + OPEN_GRACE_SECONDS,
                                 journal),
            "holds": _buyers(base_url, event_id, random.Random(rng.random()), until, journal, tried),
            **{f"joins v{i}": _visitors(base_url, event_id, f"v{i}", random.Random(rng.random()), until, journal)
               for i in range(clients)}})
        con = await _connect(database_url)
        try:
            settle_started = time.monotonic()
            while (moving := await _settled(con, base_url, 5.0)) is not None:
                if time.monotonic() - settle_started > settle_timeout:
                    log(f"not settled after {settle_timeout:.0f} s: {moving}")
                    break
                await asyncio.sleep(0.5)
            await _last_buyers(base_url, event_id, journal, tried, count=5, timeout=30)
            # One more tick, so that the serving position seen at the end is the room's own.
            await asyncio.sleep(1.5)
            results = await queue_invariants(con, event_id, journal, rate)
            results["not settled (lag, outbox)"] = int(moving is not None)
            return results, journal
        finally:
            await con.close()
    finally:
        stop.set()
        await watcher


async def queue_invariants(con: asyncpg.Connection, event_id: str, journal: QueueJournal,
                           rate: int) -> dict[str, int]:
    # One snapshot: the admission ticker goes on meanwhile, and a tick between two reads made the room's serving
    # position disagree with the admissions read before it.
    async with con.transaction(isolation="repeatable_read", readonly=True):
        return await _invariants_in_one_snapshot(con, event_id, journal, rate)


async def _invariants_in_one_snapshot(con: asyncpg.Connection, event_id: str, journal: QueueJournal,
                                      rate: int) -> dict[str, int]:
    places = {r["visitor_id"]: dict(r) for r in await con.fetch(
        "SELECT visitor_id, queue_token, position FROM queue_visitors WHERE event_id = $1", event_id,
        timeout=QUERY_SECONDS)}
    room = await con.fetchrow("SELECT opened_at, serving_position, last_position FROM waiting_rooms "
                              "WHERE event_id = $1", event_id, timeout=QUERY_SECONDS)
    assert room is not None, f"no waiting room for {event_id}"
    admissions = await con.fetch("SELECT first_position, last_position, admitted_at FROM queue_admissions "
                                 "WHERE event_id = $1 ORDER BY first_position", event_id, timeout=QUERY_SECONDS)
    holds = await con.fetch(
        """SELECT b.user_id, b.created_at, v.position,
                  (SELECT a.admitted_at FROM queue_admissions a WHERE a.event_id = b.event_id
                     AND v.position BETWEEN a.first_position AND a.last_position) AS admitted_at
           FROM bookings b LEFT JOIN queue_visitors v ON v.event_id = b.event_id AND v.visitor_id = b.user_id
           WHERE b.event_id = $1""", event_id, timeout=QUERY_SECONDS)
    return judge(journal, rate, places, dict(room), [dict(a) for a in admissions], [dict(h) for h in holds])


Row = Any  # a database row, or a dict with its columns


def judge(journal: QueueJournal, rate: int, places: dict[str, Row], room: Row, admissions: list[Row],
          holds: list[Row]) -> dict[str, int]:
    """The invariants from what the database holds: each figure counts violations."""
    positions = [r["position"] for r in places.values()]
    given = [p for p in positions if p is not None]
    out_of_order, previous, previous_at = 0, 0, None
    ahead_of_rate = 0
    for a in admissions:
        out_of_order += int(a["first_position"] != previous + 1
                            or (previous_at is not None and a["admitted_at"] < previous_at))
        previous, previous_at = a["last_position"], a["admitted_at"]
        if room["opened_at"] is not None:
            elapsed = (a["admitted_at"] - room["opened_at"]).total_seconds()
            ahead_of_rate += int(a["last_position"] > math.floor(elapsed * rate / 60 + 1e-6))
    return {
        "answered joins without their place": sum(
            1 for visitor, answer in journal.joins.items() if visitor not in places
            or places[visitor]["queue_token"] != answer["queueToken"]
            or (answer["position"] is not None and places[visitor]["position"] != answer["position"])),
        "second joins answered with another place": journal.rejoins_elsewhere,
        "visitors without a position after the opening": sum(1 for p in positions if p is None)
        if room["opened_at"] is not None else 0,
        "positions not 1..N once each": len(set(range(1, len(given) + 1)) ^ set(given)) + len(given) - len(set(given)),
        "admissions out of order or overlapping": out_of_order + int(previous != room["serving_position"]),
        "admissions ahead of the rate": ahead_of_rate,
        "serving position stuck after the last kill": _stuck(journal, room["serving_position"],
                                                             room["last_position"]),
        "holds without an admission": sum(1 for h in holds if h["position"] is None or h["admitted_at"] is None
                                          or h["created_at"] < h["admitted_at"]),
    }


def _stuck(journal: QueueJournal, serving_at_end: int, last_position: int) -> int:
    """1 when people were waiting at the last kill of the waitingroom service and nobody was admitted after it."""
    killed = [at for at, victim in journal.kills if victim == "waitingroom"]
    if not killed:
        return 0
    before = [position for at, position in journal.serving if at <= killed[-1]]
    at_kill = max(before, default=0)
    return int(last_position > at_kill and serving_at_end <= at_kill)


def run(seconds: float, seed: int | None, console: Any) -> bool:
    """Starts its own platform, runs the waiting room's chaos, prints the kills and the invariants."""
    from rich.table import Table

    from boxoffice.adapters.embedded import free_port
    from boxoffice.config import Settings

    seed = seed if seed is not None else random.randrange(1_000_000)
    data_dir = fresh_data_dir("boxoffice-queue-chaos-")
    settings = Settings(data_dir=data_dir, http_port=free_port())
    console.print(f"[bold]bench chaos --waiting-room[/]: seed {seed} (replay with --seed {seed}), {seconds:g} s of "
                  f"joins (the room opening at a quarter of them) and holds by the admitted, with "
                  f"{' or '.join(VICTIMS)} SIGKILLed every 2–6 s; platform in {data_dir}")
    with own_platform(settings, console) as runtime, console.status("running..."):
        results, journal = asyncio.run(queue_chaos(runtime.base_url, runtime.database_url,
                                                   settings.data_path, seconds, seed, log=console.print))
    console.print("kills (seconds since the start): " + ", ".join(f"{at:.1f} {v}" for at, v in journal.kills))
    console.print(f"traffic: {len(journal.joins)} visitors joined, {journal.holds} holds, "
                  f"{journal.unanswered} requests unanswered (gateway killed)")
    table = Table("invariant", "value", "", title="after settling", title_justify="left")
    for name, value in results.items():
        table.add_row(name, str(value), "[green]PASS[/]" if value == 0 else "[red]FAIL[/]")
    console.print(table)
    ok = all(value == 0 for value in results.values())
    console.print("[bold green]all invariants hold[/]" if ok else "[bold red]INVARIANT VIOLATED[/]")
    return ok


__all__ = ["VICTIMS", "QueueJournal", "judge", "queue_chaos", "queue_invariants", "run"]
