"""`boxoffice bench chaos`: a mixed crowd (book, pay, decline, cancel, let expire) while faults are injected
at random moments, then the invariants once everything has settled.

The faults (`--faults`, a comma-separated subset; `kill` by default): SIGKILL one or two services, SIGSTOP
one for a few seconds, restart the embedded PostgreSQL or the embedded broker, publish poison messages onto
the request topics (bench/faults.py). The run is driven by one random seed, printed first, so that a failure
can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import orjson
from aiokafka.errors import KafkaError

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.supervisor import Supervisor
from boxoffice.bench.faults import (
    FAULT_KINDS,
    GROUP_TOPICS,
    VICTIMS,
    ChaosError,
    DeadLetter,
    Fault,
    Poison,
    Programs,
    freeze,
    parse_faults,
    publish_poison,
    read_dead_letters,
    restart_program,
    topic_layout,
)
from boxoffice.bench.holds import bench_event
from boxoffice.bench.running import fresh_data_dir, own_platform

__all__ = ["FAULT_KINDS", "ChaosError", "Journal", "chaos", "parse_faults", "run"]

CARD, DECLINED = "4242424242424242", "4000000000000002"
LAG_LIMIT_SECONDS = 10.0  # after the last fault, every consumer's lag is back to 0 within this
POISON_ANSWER_SECONDS = 10.0  # after a poison, a hold is decided (201/409) again within this
# A request accepted with 202 this long before a broker restart may still have been waiting in Kafka (a booking
# process restarting takes ~5 s, the gateway waits 3–5 s before answering 202).
LOST_WINDOW_SECONDS = 15.0
# InternalClientError: asyncpg's protocol state after the server went away mid-query.
_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    sent: float  # seconds since the crowd started
    latency: float


@dataclass(frozen=True)
class Beat:
    """One service instance's heartbeat as sampled, with its times in seconds since the crowd started."""
    service: str
    pid: int
    lag: int
    beat_at: float
    started_at: float
    consumes: bool  # it reports a consumer lag (the gateway does not)


@dataclass
class Journal:
    answers: list[Answer] = field(default_factory=list)
    unanswered: int = 0
    kills: list[tuple[float, list[str]]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)
    # Read before each broker restart (which empties the broker) and at the end.
    dead_letters: list[DeadLetter] = field(default_factory=list)
    dead_topics_seen: bool = False
    beats: list[tuple[float, list[Beat]]] = field(default_factory=list)
    broker_epoch: int = 0  # broker restarts so far
    layout: dict[str, int] = field(default_factory=dict)  # partitions per topic before the faults
    notes: list[str] = field(default_factory=list)
    refunds_asked: int = 0
    waitlist_joins: int = 0


@dataclass(frozen=True)
class Target:
    """Where the platform under test runs."""
    base_url: str
    database_url: str
    data_dir: Path
    kafka_bootstrap: str
    event_id: str
    seats: list[str]

    def address(self, of: str) -> int | Path:
        """Where the server listens: its TCP port, or the Unix socket of the embedded database."""
        address = self.database_url if of == "postgres" else f"kafka://{self.kafka_bootstrap.split(',')[0]}"
        parts = urlsplit(address)
        query = parse_qs(parts.query)
        if of == "postgres" and query.get("host", [""])[-1].startswith("/"):
            return Path(query["host"][-1]) / f".s.PGSQL.{query.get('port', ['5432'])[-1]}"
        if parts.port is None:
            raise ChaosError(f"no port in {address!r}")
        return parts.port


async def _crowd(base_url: str, event_id: str, seats: list[str], rng: random.Random, started: float,
                 until: float, journal: Journal) -> None:
    async with aiohttp.ClientSession(base_url, timeout=aiohttp.ClientTimeout(total=15)) as http:
        while time.monotonic() < until:
            user = f"chaos_{rng.randrange(10_000)}"
            # A quarter of the crowd asks for the best seats instead of picking them (CONTRACT §8.2).
            asked: dict[str, Any] = ({"quantity": rng.randint(1, 2)} if rng.random() < 0.25
                                     else {"seatIds": rng.sample(seats, rng.randint(1, 2))})
            sent = time.monotonic()
            try:
                async with http.post("/bookings", json={"eventId": event_id, **asked, "userId": user}) as response:
                    body = await response.json()
                    journal.answers.append(Answer(response.status, body, sent - started, time.monotonic() - sent))
                if response.status == 409 and rng.random() < 0.1:
                    # Some who lose wait for seats to come free (CONTRACT §8.3).
                    async with http.post(f"/events/{event_id}/waitlist",
                                         json={"quantity": rng.randint(1, 2), "userId": user}) as joined:
                        await joined.read()
                        journal.waitlist_joins += int(joined.status in (200, 201))
                if response.status == 201:
                    choice = rng.random()
                    booking_id = body["bookingId"]
                    if choice < 0.45:
                        card = DECLINED if rng.random() < 0.2 else CARD
                        async with http.put(f"/bookings/{booking_id}/confirm", json={
                                "paymentId": f"pay_{uuid.uuid4().hex[:10]}", "amount": body["amount"],
                                "card": card}) as paid:
                            await paid.read()
                        if paid.status == 200 and rng.random() < 0.3:  # given back: refunded
                            async with http.delete(f"/bookings/{booking_id}") as refunded:
                                await refunded.read()
                                journal.refunds_asked += 1
                    elif choice < 0.65:
                        async with http.delete(f"/bookings/{booking_id}") as cancelled:
                            await cancelled.read()
            except (aiohttp.ClientError, TimeoutError, ValueError):
                journal.unanswered += 1  # the gateway died under us: nothing was promised
                await asyncio.sleep(0.2)
            await asyncio.sleep(rng.uniform(0.0, 0.05))


_BEATS = """SELECT service, pid, coalesce((info->>'lag')::bigint, 0) AS lag, info ? 'lag' AS consumes,
                   extract(epoch FROM now() - beat_at)::float8 AS age,
                   extract(epoch FROM now() - started_at)::float8 AS up
            FROM service_heartbeats WHERE beat_at > now() - interval '3 seconds'"""


async def _watch_beats(database_url: str, started: float, stop: asyncio.Event, journal: Journal) -> None:
    """Samples every instance's heartbeat four times a second, reconnecting across a database restart."""
    con: asyncpg.Connection | None = None
    try:
        while not stop.is_set():
            try:
                if con is None or con.is_closed():
                    con = await asyncpg.connect(database_url, timeout=2)
                at = time.monotonic() - started
                rows = await con.fetch(_BEATS, timeout=2)
                journal.beats.append((at, [Beat(r["service"], r["pid"], int(r["lag"]), at - r["age"], at - r["up"],
                                                r["consumes"])
                                           for r in rows]))
            except _DB_ERRORS:
                if con is not None:
                    con.terminate()
                con = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)
    finally:
        if con is not None and not con.is_closed():
            con.terminate()


async def _snapshot_dead_letters(target: Target, journal: Journal, log: Any) -> None:
    """Dead letters are in the broker too: what a restart would lose is read first."""
    try:
        letters = await read_dead_letters(target.kafka_bootstrap)
    except (KafkaError, ChaosError, OSError) as exc:
        log(f"dead letters not read before the broker restart: {exc!r}")
        journal.notes.append(f"dead letters could not be read before a broker restart ({exc!r})")
        return
    if letters is not None:
        journal.dead_topics_seen = True
        journal.dead_letters += letters


async def _kill(programs: Programs, rng: random.Random, fault: Fault, journal: Journal) -> None:
    victims = rng.sample(VICTIMS, 2 if rng.random() < 0.3 else 1)
    pids = await programs.pids(victims)
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    fault.targets, fault.pids = sorted(pids), pids
    journal.kills.append((fault.at, sorted(pids)))


async def _inject(target: Target, kinds: tuple[str, ...], rng: random.Random, started: float, until: float,
                  journal: Journal, log: Any, spacing: tuple[float, float] = (2.0, 6.0)) -> None:
    """A fault every 2–6 s (spacing) after the previous one has ended; the first ones are each chosen kind once, in a
    random order, then the kinds come at random. With `kill` alone the draws are those of the kill-only bench,
    so its seeds replay as before."""
    programs = Programs(Supervisor(target.data_dir))
    first_round = list(kinds)
    if len(kinds) > 1:
        rng.shuffle(first_round)
    while True:
        await asyncio.sleep(rng.uniform(*spacing))
        if time.monotonic() >= until:
            return
        kind = first_round.pop(0) if first_round else kinds[0] if len(kinds) == 1 else rng.choice(kinds)
        at = time.monotonic() - started
        fault = Fault(kind, at, at)
        journal.faults.append(fault)
        try:
            if kind == "kill":
                await _kill(programs, rng, fault, journal)
            elif kind == "freeze":
                await freeze(programs, rng, fault, started)
            elif kind == "db-restart":
                await restart_program(programs, "postgres", target.address("postgres"), rng, fault, started)
            elif kind == "broker-restart":
                await _snapshot_dead_letters(target, journal, log)
                try:
                    await restart_program(programs, "broker", target.address("broker"), rng, fault, started)
                finally:
                    journal.broker_epoch += 1
            elif kind == "poison":
                sent, missing = await publish_poison(target.kafka_bootstrap, target.event_id, target.seats, rng,
                                                     at, journal.broker_epoch, journal.poison)
                fault.ended = time.monotonic() - started
                fault.targets = sorted({p.topic for p in sent})
                fault.detail = f"{len(sent)} messages" + (f" (not on {', '.join(missing)}: missing)" if missing else "")
        except (KafkaError, OSError) as exc:
            fault.ended = time.monotonic() - started
            fault.detail = f"FAILED to inject: {exc!r}"
            log(f"{kind} at {at:.1f} s could not be injected: {exc!r}")


SETTLED_CHECK_SECONDS = 10.0  # how long one look at whether everything is quiet waits for each answer


async def _settled(con: asyncpg.Connection, base_url: str, stale_after: float) -> str | None:
    """None once everything is quiet, else what is still moving (a database or gateway that does not answer
    within SETTLED_CHECK_SECONDS is that)."""
    try:
        return await _moving(con, stale_after, SETTLED_CHECK_SECONDS) or await _gateway_unhealthy(base_url)
    except TimeoutError:
        return f"the database did not answer within {SETTLED_CHECK_SECONDS:g} s"


async def _moving(con: asyncpg.Connection, stale_after: float, timeout: float) -> str | None:
    rows = await con.fetch("SELECT DISTINCT ON (service) service, info, extract(epoch FROM now() - beat_at) AS age "
                           "FROM service_heartbeats ORDER BY service, beat_at DESC", timeout=timeout)
    for r in rows:
        if r["age"] > stale_after:
            return f"{r['service']} not beating"
        if orjson.loads(r["info"]).get("lag", 0):
            return f"{r['service']} lagging"
    if await con.fetchval("SELECT count(*) FROM bookings WHERE status IN ('pending', 'paying') "
                          "AND expires_at < now() - interval '1 second'", timeout=timeout):
        return "holds past their deadline"
    if await con.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL", timeout=timeout):
        return "outbox not drained"
    return None


async def _gateway_unhealthy(base_url: str) -> str | None:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SETTLED_CHECK_SECONDS)) as http, \
                http.get(f"{base_url}/health") as response:
            if (await response.json())["status"] != "ok":
                return "health degraded"
    except TimeoutError:
        return f"gateway's /health not answered within {SETTLED_CHECK_SECONDS:g} s"
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
                     mailbox_url: str | None, excused: frozenset[str] = frozenset()) -> dict[str, int]:
    """excused: requests accepted with 202 whose message was only in a broker that restarted since."""
    accepted = [a.body.get("requestId") for a in journal.answers if a.status in (201, 202, 409)]
    decided = {r["request_id"] for r in await con.fetch(
        "SELECT request_id FROM booking_requests WHERE request_id = ANY($1)", accepted)}
    seat_map: dict[str, str] = {r["seat_id"]: r["status"] for r in await con.fetch(
        "SELECT seat_id, status FROM seats WHERE event_id = $1", event_id)}
    owners = {r["seat_id"]: r["status"] for r in await con.fetch(
        """SELECT bs.seat_id, b.status FROM booking_seats bs JOIN bookings b USING (booking_id)
           WHERE bs.event_id = $1 AND bs.live""", event_id)}
    live_status = {"pending": "RESERVED", "paying": "RESERVED", "confirmed": "BOOKED", "refunding": "BOOKED"}
    expected = {seat: live_status.get(owners.get(seat, ""), "AVAILABLE") for seat in seat_map}
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
        "accepted requests without an outcome": len([r for r in accepted if r not in decided and r not in excused]),
        "seats whose status disagrees with the bookings": sum(1 for s in seat_map if seat_map[s] != expected[s]),
        "confirmed bookings without exactly one charge": sum(
            1 for c in charges if c["succeeded"] != 1 or c["charged"] != 1),
        "confirmed bookings without exactly one email": sum(
            1 for c in charges if len(emails.get(str(c["booking_id"]), ())) != 1) if mailbox_url else -1,
        "catalog counts off by": abs(counts["available"] - tally["AVAILABLE"]) + abs(
            counts["reserved"] - tally["RESERVED"]) + abs(counts["booked"] - tally["BOOKED"]),
        "live snapshot seats that disagree": sum(1 for s in seat_map if live.get(s) != seat_map[s]),
    }


async def emailless_confirmations(con: asyncpg.Connection, event_id: str, mailbox_url: str,
                                  data_dir: Path) -> list[dict[str, Any]]:
    """What is known of each confirmed booking without exactly one confirmation email: when it was decided,
    whether its booking.confirmed left the outbox, whether the notification service recorded an email, and the
    services' log lines that name it. Printed with a failed check, so one failure is enough to find the cause."""
    emails = await _emails_per_booking(mailbox_url)
    rows = await con.fetch(
        """SELECT b.booking_id::text AS booking_id, b.decided_at,
                  (SELECT n.sent_at FROM notifications_sent n WHERE n.booking_id = b.booking_id
                     AND n.kind = 'confirmation') AS email_recorded_at,
                  (SELECT array_agg(coalesce(o.published_at::text, 'unpublished') ORDER BY o.id) FROM outbox o
                    WHERE o.topic = 'booking.confirmed' AND position(b.booking_id::text IN
                          convert_from(o.payload, 'UTF8')) > 0) AS confirmed_message_published_at
           FROM bookings b WHERE b.event_id = $1 AND b.status = 'confirmed'""", event_id)
    found = []
    for row in rows:
        if len(emails.get(row["booking_id"], ())) == 1:
            continue
        lines = [f"{path.name}: {line.strip()[:300]}" for path in sorted((data_dir / "logs").glob("*.log"))
                 for line in path.read_text(errors="replace").splitlines() if row["booking_id"] in line]
        found.append({**{k: str(v) for k, v in row.items()}, "emails": len(emails.get(row["booking_id"], ())),
                      "log lines": lines[:10]})
    return found


def _median_max(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2], 1), round(ordered[-1], 1)


def _percentile_ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _services(journal: Journal, consuming: bool = False) -> list[str]:
    return sorted({b.service for _, beats in journal.beats for b in beats if b.consumes or not consuming})


def _clear_at(journal: Journal, after: float, services: list[str], new_since: float | None = None) -> float | None:
    """Seconds from `after` to the first sample in which each service beat since `after` (from a process
    started since `new_since`, when given) and every such instance reported consumer lag 0."""
    for at, beats in journal.beats:
        if at < after:
            continue
        if all((rows := [b for b in beats if b.service == service and b.beat_at >= after
                         and (new_since is None or b.started_at >= new_since)])
               and all(b.lag == 0 for b in rows) for service in services):
            return at - after
    return None


RECOVERY_MEANS = {
    "kill": "from the SIGKILL to a new process of each killed service beating with consumer lag 0",
    "freeze": "from SIGCONT to the frozen process beating again with consumer lag 0",
    "db-restart": "from PostgreSQL listening again to every service beating with consumer lag 0",
    "broker-restart": "from the broker listening again to every service beating with consumer lag 0",
    "poison": "from the poison sent to every service beating with consumer lag 0",
}


def recovery(journal: Journal, fault: Fault, services: list[str]) -> float | None:
    if fault.kind == "kill":
        times = [_clear_at(journal, fault.at, [name], new_since=fault.at) for name in fault.targets]
    elif fault.kind == "freeze":
        times = [_clear_at(journal, fault.ended, [name]) for name in fault.targets]
    else:
        times = [_clear_at(journal, fault.ended, services)]
    return None if any(t is None for t in times) else max((t for t in times if t is not None), default=0.0)


def _took_effect(fault: Fault) -> bool:
    return not fault.detail.startswith("FAILED") and (fault.kind not in ("kill", "freeze") or bool(fault.pids))


def dead_letter_checks(journal: Journal) -> tuple[dict[str, int], dict[str, Any]]:
    names = ("dead letters that are not an injected bad message (a good message dead-lettered)",
             "injected bad messages not dead-lettered by their consumer",
             "dead letters without the original key and the documented headers")
    if not journal.dead_topics_seen:
        journal.notes.append("no *.dead topic exists: the dead-letter checks are skipped (nothing was dead-lettered; "
                             "until the platform dead-letters, poison is checked by the answers that follow it)")
        return dict.fromkeys(names, -1), {}
    letters = list({d.headers.get("boxoffice-dead-letter-id") or (d.topic, d.partition, d.offset, d.value): d
                    for d in journal.dead_letters}.values())
    injected: dict[tuple[str, bytes | None], Poison] = {(p.topic, p.value): p for p in journal.poison}
    dead_by: dict[tuple[str, bytes | None, str], int] = {}
    for d in letters:
        dead_by[d.origin, d.value, d.consumer] = dead_by.get((d.origin, d.value, d.consumer), 0) + 1
    missing = lost = 0
    for p in journal.poison:
        for group, group_topics in GROUP_TOPICS.items():
            if p.acknowledged and p.topic in group_topics and (p.topic, p.value, group) not in dead_by:
                if p.broker_epoch < journal.broker_epoch:
                    lost += 1  # it, or its dead letter, was only in a broker that restarted since
                else:
                    missing += 1
    results: dict[str, int] = {
        names[0]: sum(1 for d in letters if (d.origin, d.value) not in injected),
        names[1]: missing,
        names[2]: sum(1 for d in letters if (d.origin, d.value) in injected
                      and (not d.well_formed() or d.key != injected[d.origin, d.value].key)),
    }
    by_consumer: dict[str, int] = {}
    for d in letters:
        by_consumer[d.consumer or "?"] = by_consumer.get(d.consumer or "?", 0) + 1
    stats = {"dead letters read": len(letters), "by consumer": by_consumer,
             "dead-lettered more than once (redelivered)": sum(1 for n in dead_by.values() if n > 1),
             "injected, lost with a broker restart before a dead letter was read": lost}
    return results, stats


def fault_figures(journal: Journal, seconds: float, lag_limit: float = LAG_LIMIT_SECONDS,
                  ) -> tuple[dict[str, int], dict[str, Any]]:
    """The invariants about the faults themselves, and the figures per fault kind."""
    services = _services(journal)
    results: dict[str, int] = {}
    stats: dict[str, Any] = {}
    per_kind: dict[str, dict[str, Any]] = {}
    decided = [a for a in journal.answers if a.status in (201, 409)]
    for kind in dict.fromkeys(f.kind for f in journal.faults):
        of_kind = [f for f in journal.faults if f.kind == kind]
        times = [t for f in of_kind if _took_effect(f) and (t := recovery(journal, f, services)) is not None]
        # How soon the sale goes on: the first hold decided for a request sent after the fault ended.
        resumed = [min(after) for f in of_kind if _took_effect(f)
                   and (after := [a.sent + a.latency - f.ended for a in decided if a.sent >= f.ended])]
        per_kind[kind] = {"injected": len(of_kind), "took effect": sum(1 for f in of_kind if _took_effect(f)),
                          "recovered": len(times),
                          "recovery s (median / max)": _median_max(times) if times else None,
                          "to the next 201/409 s (median / max)": _median_max(resumed) if resumed else None}
    stats["per fault kind"] = per_kind
    kill_times: dict[str, list[float]] = {}
    for f in journal.faults:
        if f.kind == "kill":
            for name in f.targets:
                if (t := _clear_at(journal, f.at, [name], new_since=f.at)) is not None:
                    kill_times.setdefault(name, []).append(t)
    stats["kill to lag 0, s (median / max)"] = {name: _median_max(times) for name, times in sorted(kill_times.items())}

    # No consumer's lag stays above 0 for long once the faults stop.
    if journal.faults:
        last = max(f.ended for f in journal.faults)
        to_zero = {service: _clear_at(journal, last, [service]) for service in _services(journal, consuming=True)}
        longest = max((t if t is not None else float("inf") for t in to_zero.values()), default=0.0)
        stats["after the last fault, s to lag 0 (longest)"] = round(longest, 1) if longest < float("inf") else "never"
        results[f"services whose consumer lag was not 0 within {lag_limit:g} s of the last fault"] = sum(
            1 for t in to_zero.values() if t is None or t > lag_limit)

    # After poison, holds are decided again at once (one bad message never stops a sale). Checked where no
    # other fault (or its recovery) overlaps the 10 s after the poison, and the crowd ran on that long.
    poisons = [f for f in journal.faults if f.kind == "poison" and _took_effect(f)]
    if poisons:
        window = POISON_ANSWER_SECONDS
        others = [f for f in journal.faults if f.kind != "poison"]
        gaps: list[float | None] = []
        checked = 0
        late = 0
        for f in poisons:
            after = [a.sent + a.latency - f.ended for a in decided if a.sent >= f.ended]
            gap = min(after) if after else None
            gaps.append(gap)
            if seconds - f.ended >= window and not any(
                    o.at < f.ended + window and o.ended + window > f.at for o in others):
                checked += 1
                late += gap is None or gap > window
        results[f"poison injections not followed by a 201/409 within {window:g} s"] = late if checked else -1
        stats["poison injections checked for the next 201/409 (no other fault near)"] = f"{checked} of {len(poisons)}"
        longest_gap = max((g for g in gaps if g is not None), default=None)
        stats["poison to the next 201/409, s (max)"] = None if longest_gap is None else round(longest_gap, 2)

        def near(answer: Answer, faults: list[Fault]) -> bool:
            return any(f.at <= answer.sent <= f.ended + window for f in faults)

        after_poison = [a.latency for a in decided if near(a, poisons) and not near(a, others)]
        quiet = [a.latency for a in decided if not near(a, journal.faults)]
        stats["201/409 latency p50 / p99, ms: away from faults"] = (
            _percentile_ms(quiet, 0.5), _percentile_ms(quiet, 0.99), len(quiet))
        stats["201/409 latency p50 / p99, ms: 10 s after poison"] = (
            _percentile_ms(after_poison, 0.5), _percentile_ms(after_poison, 0.99), len(after_poison))
        stats["202 answers in the 10 s after poison (no other fault near)"] = sum(
            1 for a in journal.answers if a.status == 202 and near(a, poisons) and not near(a, others))
        stats["poison messages sent"] = sum(1 for p in journal.poison if p.acknowledged)

    dead_results, dead_stats = dead_letter_checks(journal)
    results |= dead_results
    if dead_stats:
        stats["dead letters"] = dead_stats
    return results, stats


def _read_runtime(data_dir: Path) -> dict[str, Any]:
    try:
        runtime: dict[str, Any] = json.loads((Path(data_dir) / "runtime.json").read_text())
    except (OSError, ValueError) as exc:
        raise ChaosError(f"no runtime.json under {data_dir}: is the platform running? ({exc})") from exc
    return runtime


def check_faults(kinds: tuple[str, ...], runtime: dict[str, Any]) -> None:
    """Restarting a server is only possible for the embedded one, which the platform's supervisor runs."""
    if "db-restart" in kinds and not runtime.get("embedded_database"):
        raise ChaosError("db-restart restarts the embedded PostgreSQL, but this platform runs against an external "
                         "database (BOXOFFICE_DATABASE_URL is set); leave db-restart out of --faults")
    if "broker-restart" in kinds and not runtime.get("embedded_kafka"):
        raise ChaosError("broker-restart restarts the embedded broker, but this platform uses an external Kafka "
                         "(BOXOFFICE_KAFKA_BOOTSTRAP is set); leave broker-restart out of --faults")


async def _connect(database_url: str, timeout: float = 60.0) -> asyncpg.Connection:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncpg.connect(database_url, timeout=5)
        except _DB_ERRORS:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def chaos(base_url: str, database_url: str, data_dir: Any, mailbox_url: str | None, seconds: float,
                seed: int, clients: int = 12, settle_timeout: float = 90.0, log: Any = print,
                faults: tuple[str, ...] = ("kill",), spacing: tuple[float, float] = (2.0, 6.0),
                lag_limit: float = LAG_LIMIT_SECONDS) -> tuple[dict[str, int], Journal, dict[str, Any]]:
    """spacing: the seconds between the end of one fault and the next, drawn uniformly. lag_limit: how soon
    after the last fault every consumer must be caught up (a recovery time, which the bench holds to its
    figure; the test suite only to "not stuck", since a loaded CI machine restarts processes slower)."""
    kinds = parse_faults(",".join(faults))
    runtime = _read_runtime(Path(data_dir))
    check_faults(kinds, runtime)
    rng = random.Random(seed)
    con = await asyncpg.connect(database_url)
    try:
        spec = bench_event(300)
        await create_event(con, spec)
    finally:
        await con.close()
    seats = [s.seat_id for s in spec.seats()]
    target = Target(base_url, database_url, Path(data_dir), str(runtime["kafka_bootstrap"]), spec.event_id, seats)
    journal = Journal()
    journal.layout = await topic_layout(target.kafka_bootstrap)
    started = time.monotonic()
    until = started + seconds
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_beats(database_url, started, stop, journal))
    try:
        await asyncio.gather(
            _inject(target, kinds, random.Random(rng.random()), started, until, journal, log, spacing),
            *(_crowd(base_url, spec.event_id, seats, random.Random(rng.random()), started, until, journal)
              for _ in range(clients)))
        con = await _connect(database_url)
        try:
            return await _check(con, target, mailbox_url, journal, seconds, settle_timeout, log, lag_limit)
        finally:
            await con.close()
    finally:
        stop.set()
        await watcher


async def _check(con: asyncpg.Connection, target: Target, mailbox_url: str | None, journal: Journal,
                 seconds: float, settle_timeout: float, log: Any,
                 lag_limit: float) -> tuple[dict[str, int], Journal, dict[str, Any]]:
    settle_started = time.monotonic()
    while (moving := await _settled(con, target.base_url, 5.0)) is not None:
        if time.monotonic() - settle_started > settle_timeout:
            log(f"not settled after {settle_timeout:.0f} s: {moving}")
            break
        await asyncio.sleep(0.5)
    unsettled = int(moving is not None)
    event_id = target.event_id
    outcomes: dict[str, int] = {r["status"]: r["count"] for r in await con.fetch(
        "SELECT status, count(*) FROM bookings WHERE event_id = $1 GROUP BY status", event_id)}
    # A 202 is a request stored only in Kafka: a restart of the in-memory broker before it was decided loses it.
    # Only requests sent shortly before a restart (or during it) are counted so: one that waited longer was
    # not being consumed, and its loss is the platform's.
    restarts = [f for f in journal.faults if f.kind == "broker-restart"]
    broker_back = [f.ended for f in restarts]
    excused = frozenset(str(a.body.get("requestId")) for a in journal.answers if a.status == 202 and any(
        f.at - LOST_WINDOW_SECONDS <= a.sent < f.ended for f in restarts))
    lost = len(excused) - await con.fetchval(
        "SELECT count(*) FROM booking_requests WHERE request_id = ANY($1)", list(excused))
    stats: dict[str, Any] = {
        "settled in s": round(time.monotonic() - settle_started, 1), "bookings": outcomes,
        "answers": len(journal.answers), "unanswered (gateway killed or frozen)": journal.unanswered,
        "by status": {s: sum(1 for a in journal.answers if a.status == s)
                      for s in sorted({a.status for a in journal.answers})}}
    if broker_back:
        stats[f"accepted with 202 up to {LOST_WINDOW_SECONDS:g} s before a broker restart, lost with it"] = lost
    # Lag 0 means fetched, not yet handled: the views are eventually consistent, so the checks are
    # repeated until they hold or a deadline passes, and the last values are reported.
    check_deadline = time.monotonic() + 30
    while True:
        results = await invariants(con, target.base_url, event_id, journal, mailbox_url, excused)
        if all(v <= 0 for v in results.values()) or time.monotonic() > check_deadline:
            break
        await asyncio.sleep(1.0)
    if mailbox_url and results["confirmed bookings without exactly one email"] > 0:
        stats["confirmed bookings without exactly one email"] = await emailless_confirmations(
            con, event_id, mailbox_url, target.data_dir)
    # Settled means: every service beating, consumer lag 0, no hold past its deadline, outbox drained.
    results["not settled (lag, holds past deadline, outbox)"] = unsettled
    try:
        letters = await read_dead_letters(target.kafka_bootstrap)
    except (KafkaError, ChaosError, OSError) as exc:
        letters = None
        journal.notes.append(f"dead letters could not be read at the end: {exc!r}")
    if letters is not None:
        journal.dead_topics_seen = True
        journal.dead_letters += letters
    if broker_back:
        # A broker that came back empty gets its topics again from whichever client asks first.
        try:
            layout = await topic_layout(target.kafka_bootstrap)
        except (KafkaError, OSError) as exc:
            journal.notes.append(f"topics not listed at the end: {exc!r}")
        else:
            stats["topics with other partition counts than before the faults"] = {
                topic: (count, layout.get(topic, 0)) for topic, count in journal.layout.items()
                if layout.get(topic, 0) != count}
    fault_results, fault_stats = fault_figures(journal, seconds, lag_limit)
    results |= fault_results
    stats |= fault_stats
    after, after_stats = await _after_the_sale(con, target, journal, settle_timeout, log)
    results |= after
    stats |= after_stats
    return results, journal, stats


async def _after_the_sale(con: asyncpg.Connection, target: Target, journal: Journal, settle_timeout: float,
                          log: Any) -> tuple[dict[str, int], dict[str, Any]]:
    """The organiser calls the event off once the crowd has gone: every paid booking is refunded once, the
    money charged less the money refunded is what confirmed bookings hold (nothing, by then), and the waiting
    list has ended."""
    event_id = target.event_id
    async with aiohttp.ClientSession(target.base_url, timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(f"/events/{event_id}/cancel") as called_off:
            await called_off.read()
        deadline = time.monotonic() + settle_timeout
        done = False
        while not done and time.monotonic() < deadline:
            async with http.get(f"/events/{event_id}") as response:
                cancellation = (await response.json()).get("cancellation") or {}
            done = bool(cancellation.get("done"))
            if not done:
                await asyncio.sleep(0.5)
    if not done:
        log(f"the cancellation of {event_id} did not finish within {settle_timeout:.0f} s")
    statuses = {r["status"]: r["count"] for r in await con.fetch(
        "SELECT status, count(*) FROM bookings WHERE event_id = $1 GROUP BY status", event_id)}
    refunds = await con.fetch(
        """SELECT b.booking_id,
                  (SELECT count(*) FROM refunds r WHERE r.booking_id = b.booking_id AND r.status = 'succeeded')
                      AS recorded,
                  (SELECT count(*) FROM simulated_provider_refunds s
                    WHERE s.idempotency_key = 'refund:' || b.refund_id AND s.approved) AS returned
           FROM bookings b WHERE b.event_id = $1 AND b.status = 'refunded'""", event_id)
    money = await con.fetchrow(
        """SELECT
             coalesce((SELECT sum(c.amount) FROM simulated_provider_charges c JOIN bookings b
                         ON c.idempotency_key LIKE b.booking_id::text || ':%'
                       WHERE b.event_id = $1 AND c.approved), 0) AS charged,
             coalesce((SELECT sum(s.amount) FROM simulated_provider_refunds s JOIN bookings b
                         ON s.idempotency_key = 'refund:' || b.refund_id
                       WHERE b.event_id = $1 AND s.approved), 0) AS refunded,
             coalesce((SELECT sum(amount) FROM bookings WHERE event_id = $1 AND status = 'confirmed'), 0) AS held""",
        event_id)
    assert money is not None
    waiting = await con.fetchval("SELECT count(*) FROM waitlist WHERE event_id = $1 AND status = 'waiting'",
                                 event_id)
    offered = await con.fetchval("SELECT count(*) FROM waitlist WHERE event_id = $1 AND booking_id IS NOT NULL",
                                 event_id)
    results = {
        "bookings still live after the event was cancelled": sum(
            statuses.get(s, 0) for s in ("pending", "paying", "confirmed", "refunding")),
        "refunded bookings without exactly one refund": sum(
            1 for r in refunds if r["recorded"] != 1 or r["returned"] != 1),
        "money charged - refunded - held by confirmed bookings": int(
            abs(money["charged"] - money["refunded"] - money["held"]) * 100),
        "waiting-list entries not offered, expired or left": waiting,
    }
    stats = {"after the sale": {"bookings": statuses, "refunds asked by buyers": journal.refunds_asked,
                                "waiting-list joins": journal.waitlist_joins, "waiting-list offers": offered,
                                "charged": float(money["charged"]), "refunded": float(money["refunded"])}}
    return results, stats


def verdict(value: int) -> str:
    return "SKIP" if value < 0 else "PASS" if value == 0 else "FAIL"


def run(seconds: float, seed: int | None, console: Any, faults: tuple[str, ...] = ("kill",)) -> bool:
    """Starts its own platform (holds of 3 s), runs the chaos, prints the faults and the invariants."""
    from rich.table import Table

    from boxoffice.adapters.embedded import free_port
    from boxoffice.config import Settings

    seed = seed if seed is not None else random.randrange(1_000_000)
    kinds = parse_faults(",".join(faults))
    data_dir = fresh_data_dir("boxoffice-chaos-")
    # A provider like a real one: a tail of slow answers and a few retryable errors.
    settings = Settings(data_dir=data_dir, http_port=free_port(), hold_seconds=3, payment_latency_ms=50,
                        payment_latency_p99_ms=250, payment_failure_rate=0.05)
    check_faults(kinds, {"embedded_database": not settings.database_url,
                         "embedded_kafka": not settings.kafka_bootstrap})
    console.print(f"[bold]bench chaos[/]: seed {seed} (replay with --seed {seed} --faults {','.join(kinds)}), "
                  f"{seconds:g} s of book (picked or best available) / pay / decline / cancel / refund / expire / "
                  f"wait in line, then the event cancelled, with faults every 2–6 s: "
                  f"{', '.join(kinds)} (services: {', '.join(VICTIMS)}); platform in {data_dir}")
    with own_platform(settings, console) as runtime, console.status("running..."):
        results, journal, stats = asyncio.run(chaos(
            runtime.base_url, runtime.database_url, settings.data_path, runtime.mailbox_url, seconds, seed,
            log=console.print, faults=kinds))
    console.print("faults (seconds since the start):")
    for fault in journal.faults:
        console.print("  " + fault.describe())
    per_kind = Table("fault", "injected", "took effect", "recovered", "recovery s\n(median / max)",
                     "next 201/409 s\n(median / max)", "recovery is", title="per fault kind", title_justify="left")
    for kind, figures in stats.pop("per fault kind").items():
        times, resumed = figures["recovery s (median / max)"], figures["to the next 201/409 s (median / max)"]
        per_kind.add_row(kind, str(figures["injected"]), str(figures["took effect"]), str(figures["recovered"]),
                         f"{times[0]} / {times[1]}" if times else "-",
                         f"{resumed[0]} / {resumed[1]}" if resumed else "-", RECOVERY_MEANS[kind])
    console.print(per_kind)
    console.print(f"traffic: {stats}")
    table = Table("invariant", "value", "", title="after settling", title_justify="left")
    ok = True
    for name, value in results.items():
        ok &= value <= 0
        colour = {"PASS": "green", "FAIL": "red", "SKIP": "yellow"}[verdict(value)]
        table.add_row(name, str(value) if value >= 0 else "-", f"[{colour}]{verdict(value)}[/]")
    console.print(table)
    for note in journal.notes:
        console.print(f"note: {note}")
    console.print("[bold green]all invariants hold[/]" if ok else "[bold red]INVARIANT VIOLATED[/]")
    return ok
