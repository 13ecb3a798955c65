"""`boxoffice bench holds --best-available`: the same wishes as pick-a-seat and as best available, to sell-out.

In one platform run, two fresh events of the same size. One crowd of wishes (quantity 1 to `max_seats`, seeded)
is fired twice end to end: as today's pick-a-seat requests (`seatIds` the buyer chose from the map, popular
front rows asked for more) and as best-available requests (`quantity`, and `categoryId` when asked). Demand
exceeds supply, so both events run out. From the answers and the final seat maps it prints decisions/s,
latency, the refusals, the share served while enough seats remained, stranded single seats and invariants.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections import Counter
from dataclasses import dataclass, replace

import asyncpg
from rich.console import Console
from rich.table import Table

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.embedded import free_port
from boxoffice.adapters.postgres import create_pool
from boxoffice.adapters.supervisor import Supervisor
from boxoffice.bench.holds import (
    Outcome,
    _cpu_seconds,
    _pct,
    _process_cpu,
    bench_event,
    crowd,
    fire_bodies,
    invariants,
)
from boxoffice.bench.running import fresh_data_dir, own_platform
from boxoffice.config import Settings
from boxoffice.domain.catalog import EventSpec

OVERSUBSCRIBED = 1.2  # seats asked for / seats on sale, so that the crowd sells the event out


@dataclass(frozen=True)
class MapSeat:
    seat_id: str
    section: str
    row: str
    number: int
    category_id: str
    available: bool


@dataclass(frozen=True)
class Judgement:
    """A crowd's answers judged against its event's seat map at the end (no hold is released during the crowd,
    so free seats only get fewer: what was free at the end was free when each request was decided)."""

    served: int  # 201
    refused_with_room: int  # refused, though `quantity` seats together were still free in its category at the end
    sold_out_with_seats: int  # refused sold_out, though `quantity` seats were still free in its category
    failures: int  # refused while enough seats remained (either of the two above)
    sold: int
    on_sale: int
    stranded: int
    longest_run: int

    @property
    def share(self) -> float:
        return self.served / (self.served + self.failures) if self.served + self.failures else float("nan")


def default_requests(seats_on_sale: int, max_seats: int) -> int:
    """Enough requests for the mean quantity, (1 + max_seats) / 2, to ask for 1.2× the seats on sale."""
    return math.ceil(seats_on_sale / ((1 + max_seats) / 2) * OVERSUBSCRIBED)


def stranded(seat_map: list[MapSeat]) -> int:
    """Free seats whose neighbours on both sides of the row (number ± 1) exist and are taken."""
    taken = {(s.section, s.row, s.number): not s.available for s in seat_map}
    return sum(1 for s in seat_map if s.available and taken.get((s.section, s.row, s.number - 1)) is True
               and taken.get((s.section, s.row, s.number + 1)) is True)


def longest_run(seat_map: list[MapSeat], category: str | None) -> int:
    """The most free seats together in one row of the category (None: any)."""
    free = {(s.section, s.row, s.number) for s in seat_map
            if s.available and (category is None or s.category_id == category)}
    best = 0
    for section, row, number in free:
        if (section, row, number - 1) in free:
            continue  # not the start of a run
        end = number
        while (section, row, end + 1) in free:
            end += 1
        best = max(best, end - number + 1)
    return best


def judge(outcomes: list[Outcome], quantities: list[int], seat_map: list[MapSeat], category: str | None,
          ) -> Judgement:
    in_scope = [s for s in seat_map if category is None or s.category_id == category]
    free = sum(s.available for s in in_scope)
    run = longest_run(seat_map, category)
    with_room = sold_out_with_seats = failures = 0
    for outcome, quantity in zip(outcomes, quantities, strict=True):
        if outcome.status == 201:
            continue
        together = run >= quantity
        wrong_code = outcome.code == "sold_out" and free >= quantity
        with_room += together
        sold_out_with_seats += wrong_code
        failures += together or wrong_code
    return Judgement(sum(o.status == 201 for o in outcomes), with_room, sold_out_with_seats, failures,
                     len(in_scope) - free, len(in_scope), stranded(seat_map), run)


def blocks_not_together(outcomes: list[Outcome], quantities: list[int], seat_map: list[MapSeat],
                        category: str | None) -> int:
    """201 answers whose seats are not `quantity` seats next to each other in one row of the category."""
    by_id = {s.seat_id: s for s in seat_map}
    wrong = 0
    for outcome, quantity in zip(outcomes, quantities, strict=True):
        if outcome.status != 201:
            continue
        seats = sorted((by_id[s] for s in outcome.held if s in by_id), key=lambda s: s.number)
        wrong += not (len(seats) == len(outcome.held) == quantity
                      and len({(s.section, s.row) for s in seats}) == 1
                      and all(b.number == a.number + 1 for a, b in itertools.pairwise(seats))
                      and all(category is None or s.category_id == category for s in seats))
    return wrong


async def seat_map(pool: asyncpg.Pool, event_id: str) -> list[MapSeat]:
    return [MapSeat(r["seat_id"], r["section"], r["row_label"], r["seat_number"], r["category_id"],
                    r["status"] == "AVAILABLE")
            for r in await pool.fetch(
                "SELECT seat_id, section, row_label, seat_number, category_id, status FROM seats WHERE event_id = $1",
                event_id)]


def _scope(spec: EventSpec, category: str | None) -> EventSpec:
    return spec if category is None else replace(spec, rows=tuple(r for r in spec.rows if r.category_id == category))


def categories() -> list[str]:
    return [c.category_id for c in bench_event(1).categories]


def run(requests: int | None, clients: int, seats: int, max_seats: int, category: str | None, seed: int,
        console: Console) -> bool:
    """Returns whether the invariants held for both crowds."""
    on_sale = len(_scope(bench_event(seats), category).seats())
    requests = requests if requests is not None else default_requests(on_sale, max_seats)
    data_dir = fresh_data_dir()
    settings = Settings(data_dir=data_dir, http_port=free_port(), booking_reply_seconds=10)
    where = f"category {category}" if category else "any category"
    console.print(f"[bold]bench holds --best-available[/]: {requests:,} requests from {clients} concurrent clients "
                  f"for {on_sale:,} seats ({where}) on each of two events of {seats:,} seats, 1–{max_seats} seats "
                  f"each, seed {seed}; platform in {data_dir}")
    with own_platform(settings, console) as runtime:
        return asyncio.run(_measure(settings, runtime, requests, clients, seats, max_seats, category, seed, console))


@dataclass
class _Crowd:
    name: str
    event_id: str
    bodies: list[dict[str, object]]
    outcomes: list[Outcome]
    wall: float
    cpu: dict[str, float]
    checks: dict[str, object]
    seat_map: list[MapSeat]


async def _measure(settings: Settings, runtime: object, requests: int, clients: int, seats: int, max_seats: int,
                   category: str | None, seed: int, console: Console) -> bool:
    base_url: str = runtime.base_url  # type: ignore[attr-defined]
    pool = await create_pool(runtime.database_url, size=16)  # type: ignore[attr-defined]
    try:
        pick_spec, best_spec = bench_event(seats), bench_event(seats)
        async with pool.acquire() as con:
            await create_event(con, pick_spec)
            await create_event(con, best_spec)
        # One crowd of wishes: the pick-a-seat buyers' seats give each wish its quantity.
        picked = crowd(_scope(pick_spec, category), requests, max_seats, seed)
        quantities = [len(p) for p in picked]
        asked = {"categoryId": category} if category else {}
        crowds: list[tuple[str, str, list[dict[str, object]]]] = [
            ("pick a seat", pick_spec.event_id, [{"eventId": pick_spec.event_id, "seatIds": p} for p in picked]),
            ("best available", best_spec.event_id,
             [{"eventId": best_spec.event_id, "quantity": q, **asked} for q in quantities]),
        ]

        # A short warm-up of both kinds on other events: connections, prepared statements, seatings.
        rng = random.Random(seed)
        warm_pick, warm_best = bench_event(200), bench_event(200)
        async with pool.acquire() as con:
            await create_event(con, warm_pick)
            await create_event(con, warm_best)
        await fire_bodies(base_url, [{"eventId": warm_pick.event_id, "seatIds": p}
                                     for p in crowd(warm_pick, 300, 2, seed)], 50)
        await fire_bodies(base_url, [{"eventId": warm_best.event_id, "quantity": rng.randint(1, max_seats)}
                                     for _ in range(120)], 50)

        processes = _process_cpu(Supervisor(settings.data_path))
        done = []
        for name, event_id, bodies in crowds:
            before = _cpu_seconds(processes)
            outcomes, wall = await fire_bodies(base_url, bodies, clients)
            after = _cpu_seconds(processes)
            done.append(_Crowd(name, event_id, bodies, outcomes, wall,
                               {p: after[p] - before.get(p, 0.0) for p in after},
                               await invariants(pool, event_id, outcomes), await seat_map(pool, event_id)))
    finally:
        await pool.close()
    return _report(done, quantities, category, clients, console)


def _report(crowds: list[_Crowd], quantities: list[int], category: str | None, clients: int,
            console: Console) -> bool:
    judged = [judge(c.outcomes, quantities, c.seat_map, category) for c in crowds]
    table = Table(title=f"the same {len(quantities):,} wishes, to sell-out ({clients} clients, end to end)",
                  title_justify="left")
    table.add_column("")
    for c in crowds:
        table.add_column(c.name, justify="right")

    def add(label: str, cells: list[str]) -> None:
        table.add_row(label, *cells)

    add("decisions/s", [f"{sum(o.status in (201, 409) for o in c.outcomes) / c.wall:,.0f}" for c in crowds])
    for label, q in (("p50 ms", .5), ("p99 ms", .99)):
        add(label, [f"{_pct([o.seconds * 1000 for o in c.outcomes], q):.1f}" for c in crowds])
    add("201", [f"{j.served:,}" for j in judged])
    codes = [Counter(o.code or "?" for o in c.outcomes if o.status == 409) for c in crowds]
    for code in sorted(set().union(*codes)):
        add(f"409 {code}", [f"{n[code]:,}" for n in codes])
    add("other answers", [f"{sum(o.status not in (201, 409) for o in c.outcomes):,}" for c in crowds])
    add("served while enough seats remained",
        [f"{j.share:.1%} ({j.served:,} of {j.served + j.failures:,})" for j in judged])
    add("  refused, yet the seats together remained", [f"{j.refused_with_room:,}" for j in judged])
    add("  sold_out, yet enough seats remained", [f"{j.sold_out_with_seats:,}" for j in judged])
    add("seats sold", [f"{j.sold:,} of {j.on_sale:,}" for j in judged])
    add("most free seats together at the end", [f"{j.longest_run}" for j in judged])
    add("stranded single seats at the end", [f"{j.stranded}" for j in judged])
    add("wall s", [f"{c.wall:.2f}" for c in crowds])
    add("CPU s, all processes (2 cores)", [f"{sum(c.cpu.values()):.2f} of {2 * c.wall:.1f}" for c in crowds])
    names = {name for c in crowds for name, seconds in c.cpu.items() if seconds >= 0.05}
    for name in sorted(names, key=lambda n: -sum(c.cpu.get(n, 0.0) for c in crowds)):
        add(f"  {name}", [f"{c.cpu.get(name, 0.0):.2f}" for c in crowds])
    console.print(table)
    console.print("  served while enough seats remained: 201s ÷ (201s + refusals of a request whose quantity was "
                  "still free together in its category at the end, or refused sold_out while as many seats were "
                  "free); stranded: free seats whose neighbours on both sides are taken")

    checks_table = Table(title="invariants", title_justify="left")
    checks_table.add_column("check")
    for c in crowds:
        checks_table.add_column(c.name, justify="right")
    for c in crowds:
        c.checks["201 answers not the quantity together in one row"] = blocks_not_together(
            c.outcomes, quantities, c.seat_map, category)
    for name in crowds[0].checks:
        checks_table.add_row(name, *(str(c.checks[name]) for c in crowds))
    console.print(checks_table)
    ok = all(c.checks["seats in two 201 answers"] == 0 and c.checks["seat map matches the 201 answers"]
             and c.checks["requests without a final answer"] == 0 and len(c.outcomes) == len(quantities)
             and c.checks["201 answers not the quantity together in one row"] == 0 for c in crowds)
    console.print("[bold green]invariants hold[/]: no seat in two 201 answers, every request answered"
                  if ok else "[bold red]INVARIANT VIOLATED[/]")
    return ok
