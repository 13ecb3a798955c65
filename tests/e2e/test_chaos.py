"""Fault injection during a mixed crowd: services SIGKILLed at random moments (and, in the second test, frozen,
the database and the broker restarted, poison messages published); afterwards nothing accepted is lost,
nothing is sold twice, every confirmation was charged and emailed once, and every view agrees. The same for a
waiting room while its service and the gateway are SIGKILLed, whose run opens the sale even when the gateway
dies under the opening."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from boxoffice.adapters.catalog_store import create_event
from boxoffice.adapters.supervisor import SERVICE_GROUP, Supervisor
from boxoffice.bench.chaos import FAULT_KINDS, chaos
from boxoffice.bench.faults import ChaosError, Programs
from boxoffice.bench.holds import bench_event
from boxoffice.bench.queue_chaos import FAR, VICTIMS, QueueJournal, _open, queue_chaos
from boxoffice.domain.waiting_room import OnSale
from boxoffice.messages import ONSALE_CHANGE_REQUESTED
from tests.e2e.api_client import wait_for
from tests.platforms import RunningPlatform, start_platform

SEED = 20261125
# Its first faults come in the order kill, freeze, poison, db-restart, broker-restart: poison goes out before a
# broker restart (after which the request topics can be missing for a while, and poison is not sent to them).
FAULTS_SEED = 20261234
# How soon after the last fault every consumer is caught up is the bench's figure (10 s); here only that none is
# stuck, since on a loaded CI machine a killed service takes longer to come back.
NOT_STUCK_SECONDS = 30.0


@pytest.fixture(scope="module")
def chaos_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    yield from start_platform(tmp_path_factory.mktemp("chaos"), BOXOFFICE_HOLD_SECONDS="3",
                              BOXOFFICE_PAYMENT_LATENCY_MS="50",
                              BOXOFFICE_PAYMENT_LATENCY_P99_MS="250", BOXOFFICE_PAYMENT_FAILURE_RATE="0.05")


async def test_nothing_is_lost_or_sold_twice_while_services_are_killed(chaos_platform: RunningPlatform) -> None:
    print(f"chaos seed {SEED}: replay with `boxoffice bench chaos --seconds 45 --seed {SEED}`")
    runtime = chaos_platform.runtime
    results, journal, stats = await chaos(chaos_platform.base_url, str(runtime["database_url"]),
                                          chaos_platform.data_dir, str(runtime["mailbox_url"]), 45, SEED,
                                          lag_limit=NOT_STUCK_SECONDS)
    print("kills:", journal.kills, "traffic:", stats)

    assert len(journal.kills) >= 5, journal.kills
    assert stats["bookings"].get("confirmed", 0) > 0 and stats["bookings"].get("expired", 0) > 0, stats
    assert results == dict.fromkeys(results, 0) | {k: v for k, v in results.items() if v == -1}, results


@pytest.fixture(scope="module")
def faults_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    yield from start_platform(tmp_path_factory.mktemp("faults"), BOXOFFICE_HOLD_SECONDS="3",
                              BOXOFFICE_PAYMENT_LATENCY_MS="50",
                              BOXOFFICE_PAYMENT_LATENCY_P99_MS="250", BOXOFFICE_PAYMENT_FAILURE_RATE="0.05")


@pytest.mark.timeout(420)
async def test_invariants_hold_under_every_kind_of_fault(faults_platform: RunningPlatform) -> None:
    faults = ",".join(FAULT_KINDS)
    # Faults 1–4 s apart (the bench's 2–6 s would not fit every kind into 40 s).
    print(f"chaos seed {FAULTS_SEED}: a run like `boxoffice bench chaos --seconds 40 --seed {FAULTS_SEED} "
          f"--faults {faults}`")
    runtime = faults_platform.runtime
    results, journal, stats = await chaos(faults_platform.base_url, str(runtime["database_url"]),
                                          faults_platform.data_dir, str(runtime["mailbox_url"]), 40, FAULTS_SEED,
                                          faults=FAULT_KINDS, spacing=(1.0, 4.0), lag_limit=NOT_STUCK_SECONDS)
    print("faults:", *(f.describe() for f in journal.faults), sep="\n  ")
    print("traffic:", stats, "notes:", journal.notes)
    print("invariants:", results)

    injected = Counter(f.kind for f in journal.faults)
    assert set(injected) == set(FAULT_KINDS), injected  # each kind at least once
    assert stats["poison messages sent"] >= 11, stats
    assert stats["bookings"].get("confirmed", 0) > 0, stats
    # Each figure counts violations; -1 is a check that does not apply (no dead-letter topic yet).
    violated = {name: value for name, value in results.items() if value > 0}
    assert not violated, violated


QUEUE_SEED = 20261205


@pytest.fixture(scope="module")
def queue_chaos_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    yield from start_platform(tmp_path_factory.mktemp("queue_chaos"))


# Every wait of the bench ends (each with a reason if it gives up): the traffic and the opening within 70 s, the
# settling within 110 s, the last holds within 50 s; starting the platform takes up to 180 s on a loaded machine.
@pytest.mark.timeout(420)
async def test_a_waiting_room_loses_no_place_and_gives_none_twice_while_its_service_and_the_gateway_die(
        queue_chaos_platform: RunningPlatform) -> None:
    # Seed 20261205 once hung here on a loaded machine: the gateway was killed under the opening's PUT, and the
    # opening was retried with another opensAt, refused for good once the room had opened.
    print(f"chaos seed {QUEUE_SEED}: a run like `boxoffice bench chaos --waiting-room --seconds 30 "
          f"--seed {QUEUE_SEED}`")
    results, journal = await queue_chaos(queue_chaos_platform.base_url,
                                         str(queue_chaos_platform.runtime["database_url"]),
                                         queue_chaos_platform.data_dir, 30, QUEUE_SEED, rate=300,
                                         spacing=(2.0, 4.0))
    print("kills:", journal.kills, "opening:", journal.opening_answers, "visitors:", len(journal.joins),
          "holds:", journal.holds, "invariants:", results)

    assert {victim for _, victim in journal.kills} == set(VICTIMS), journal.kills
    # How many join depends on how loaded the machine is (a join waits up to 5 s for a waitingroom that is down,
    # then 202): 250 on a quiet machine, 15 with a load of 25 on 2 cores. Some of the admitted always hold.
    assert len(journal.joins) >= 10 and journal.holds > 0, (len(journal.joins), journal.holds)
    serving_at_end = journal.serving[-1][1]
    assert serving_at_end > 0, "nobody was admitted"
    assert results == dict.fromkeys(results, 0), results


async def _stop_program(programs: Programs, name: str) -> None:
    """Stops a program supervisord may be restarting (it cannot stop one between two states)."""
    async def stopped() -> bool:
        try:
            await programs.stop(f"{SERVICE_GROUP}:{name}")
        except ChaosError:  # e.g. NOT_RUNNING: exited, not yet restarting
            return False
        return True

    assert await wait_for(stopped, timeout=30), f"supervisord did not stop {name}"


@pytest.mark.timeout(420)  # its waits end within 240 s; starting the platform takes up to 180 s
async def test_the_runs_opening_is_confirmed_when_the_gateway_died_under_it_and_came_back_after_the_opening(
        queue_chaos_platform: RunningPlatform) -> None:
    """As with seed 20261205 on a loaded machine: the opening's PUT waits for a waitingroom service that is
    restarting, the gateway is killed under it, and by the time it is back the room has opened. Asked again
    with another opensAt, the opening was refused (409 sale_open) for good and the run never ended."""
    platform = queue_chaos_platform
    spec = bench_event(10)
    spec = type(spec)(**{**spec.__dict__, "on_sale": OnSale(FAR, True, 300, 10)})
    con = await asyncpg.connect(str(platform.runtime["database_url"]))
    changes = AIOKafkaConsumer(ONSALE_CHANGE_REQUESTED, bootstrap_servers=str(platform.runtime["kafka_bootstrap"]),
                               auto_offset_reset="earliest", enable_auto_commit=False)
    await changes.start()
    programs = Programs(Supervisor(platform.data_dir))
    journal = QueueJournal()
    opening: asyncio.Task[None] | None = None
    try:
        await create_event(con, spec)
        await _stop_program(programs, "waitingroom")  # the PUT waits for it (BOOKING_REPLY_SECONDS)
        opening = asyncio.create_task(_open(platform.base_url, spec.event_id, 300, time.monotonic(),
                                            time.monotonic() + 90, journal))

        async def published() -> bool:
            batches = await changes.getmany(timeout_ms=200)
            return any(r.key == spec.event_id.encode() for rs in batches.values() for r in rs)

        assert await wait_for(published), "the opening's change never reached Kafka"
        os.kill((await programs.pids(["gateway"]))["gateway"], signal.SIGKILL)
        await _stop_program(programs, "gateway")  # back only after the opening, as on a loaded machine
        await programs.start(f"{SERVICE_GROUP}:waitingroom")

        async def opened() -> bool:
            return await con.fetchval("SELECT opened_at FROM waiting_rooms WHERE event_id = $1",
                                      spec.event_id) is not None

        assert await wait_for(opened, timeout=60), "the waiting room did not open"
    except BaseException:
        if opening is not None:
            opening.cancel()
        raise
    finally:
        running = await programs.pids(["gateway", "waitingroom"])
        for name in {"gateway", "waitingroom"} - set(running):
            await programs.start(f"{SERVICE_GROUP}:{name}")
        await changes.stop()
        await con.close()

    await opening  # a ChaosError with the last answer if it gives up

    assert journal.opened and journal.opening_answers[-1] == "200", journal.opening_answers
    assert journal.opening_answers[0] != "200", journal.opening_answers  # the gateway died under the first
