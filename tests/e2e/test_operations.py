"""Operations end to end: GET /metrics counts what every service did (the JSON logs are tested in
tests/integration/test_observability.py and tests/unit/test_logs.py: a platform of their own would cost more)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from boxoffice.adapters.supervisor import Supervisor
from tests.e2e.api_client import book, wait_for
from tests.platforms import RunningPlatform

EVENT = "jazz_night"

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def client(platform: RunningPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as c:
        yield c


async def scrape(client: httpx.AsyncClient) -> Series:
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


async def settled(client: httpx.AsyncClient, deadline: float = 15.0) -> Series:
    """A scrape after which no heartbeat brings news: what earlier tests did has all been reported."""
    last = await scrape(client)
    for _ in range(int(deadline / 1.5)):
        await asyncio.sleep(1.5)  # longer than a heartbeat
        now = await scrape(client)
        # The gateway's HTTP counters move with these very scrapes; the services' counters must not.
        if all(now.get(key) == value for key, value in last.items()
               if key[0].endswith("_total") and not key[0].startswith("boxoffice_http")):
            return now
        last = now
    return last


def moved(before: Series, after: Series, name: str, **labels: str) -> float:
    """How far a counter moved, summed over the instances (and other labels) that match."""
    return sum(value - before.get(key, 0.0) for key, value in after.items()
               if key[0] == name and set(labels.items()) <= key[1])


async def test_metrics_count_a_hold_a_refusal_and_a_payment(client: httpx.AsyncClient) -> None:
    before = await settled(client)

    won = await book(client, EVENT, ["A1", "A2"], "metrics_fan_1")
    lost = await book(client, EVENT, ["A2"], "metrics_fan_2")
    assert (won.status_code, lost.status_code) == (201, 409), (won.text, lost.text)
    booking = won.json()
    paid = await client.put(f"/bookings/{booking['bookingId']}/confirm",
                            json={"paymentId": "pay_metrics_1", "amount": booking["amount"]},
                            headers={"X-Request-ID": "ops-test-1"})
    assert paid.status_code == 200 and paid.json()["status"] == "confirmed", paid.text
    assert paid.headers["x-request-id"] == "ops-test-1"

    expected = {
        ("boxoffice_holds_granted_total", ()): 1,
        ("boxoffice_holds_refused_total", (("reason", "seat_unavailable"),)): 1,
        ("boxoffice_payments_total", (("outcome", "succeeded"),)): 1,
        ("boxoffice_payments_total", (("outcome", "failed"),)): 0,
        ("boxoffice_bookings_confirmed_total", ()): 1,
        ("boxoffice_http_requests_total", (("route", "/bookings"), ("method", "POST"), ("status", "201"))): 1,
        ("boxoffice_http_requests_total", (("route", "/bookings"), ("method", "POST"), ("status", "409"))): 1,
        ("boxoffice_http_requests_total", (("route", "/bookings/{booking_id}/confirm"), ("status", "200"))): 1,
    }
    after: Series = {}

    async def counted() -> bool:
        # The services' counters arrive with their next heartbeat (every second).
        nonlocal after
        after = await scrape(client)
        return all(moved(before, after, name, **dict(labels)) >= n for (name, labels), n in expected.items())

    assert await wait_for(counted, timeout=15, every=0.5), {
        name: moved(before, after, name, **dict(labels)) for name, labels in expected}
    for (name, labels), n in expected.items():
        assert moved(before, after, name, **dict(labels)) == n, (name, labels)
    assert moved(before, after, "boxoffice_http_request_duration_seconds_count", route="/bookings") == 2
    assert moved(before, after, "boxoffice_messages_consumed_total", service="booking",
                 topic="seat.reservation.requested") == 2
    for service in ("gateway", "booking", "payment", "catalog", "notification", "realtime"):
        assert after[("boxoffice_service_up", frozenset({("service", service)}))] == 1
    lags = {dict(labels)["service"] for name, labels in after if name == "boxoffice_consumer_lag"}
    assert {"booking", "payment", "catalog", "notification", "realtime"} <= lags


def test_notification_and_the_mailbox_run_at_a_lower_cpu_priority(platform: RunningPlatform) -> None:
    """Emails are off the buyer's path: on shared cores checkout goes first (BOXOFFICE_NOTIFICATION_NICE, 10)."""
    names = {"notification", "mailbox", "booking", "gateway", "payment"}
    deadline = time.monotonic() + 60
    while True:  # an earlier test may have restarted a service: its new process is what counts
        running = {name: description for name, state, description in Supervisor(platform.data_dir).status()
                   if state == "RUNNING"}
        if names <= running.keys() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    niceness = {name: psutil.Process(int(running[name].split()[1].rstrip(","))).nice() for name in names}
    assert niceness["notification"] == niceness["mailbox"] == niceness["booking"] + 10
    assert niceness["gateway"] == niceness["payment"] == niceness["booking"]


def test_up_on_a_running_platform_says_so_and_leaves_it_running(platform: RunningPlatform) -> None:
    """Also in the foreground: the platform is not this `up`'s to stop, and settings given now do not apply."""
    pids = {name: description for name, state, description in Supervisor(platform.data_dir).status()
            if state == "RUNNING"}
    again = platform.cli("up", timeout=120)
    assert again.returncode == 0, again
    assert "It was already running" in again.stdout and "Press Ctrl-C" not in again.stdout, again.stdout
    # Said first, and the first line of the addresses does not claim a start it did not make.
    assert again.stdout.index("It was already running") < again.stdout.index("boxoffice is up"), again.stdout
    assert "boxoffice is up (embedded Kafka at " in again.stdout, again.stdout
    assert "; it was already running" in again.stdout, again.stdout
    assert httpx.get(f"{platform.base_url}/health", timeout=10).json()["status"] == "ok"
    still = {name: description for name, state, description in Supervisor(platform.data_dir).status()
             if state == "RUNNING"}
    assert {name: d.split(",")[0] for name, d in still.items()} == {name: d.split(",")[0] for name, d in pids.items()}
    started = platform.cli("start", "booking")
    assert started.returncode == 0 and started.stdout.strip() == "booking is already running", started
