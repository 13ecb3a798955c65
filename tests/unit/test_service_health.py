"""The gateway's view of the services' health: it ages when the heartbeats cannot be read, and shows a
consumer stuck retrying as degraded."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.testclient import TestClient

from boxoffice.config import SERVICES, Settings
from boxoffice.entrypoints.gateway.app import create_app
from boxoffice.entrypoints.gateway.state import ServiceHealth

STALE = 5.0


class Heartbeats:
    """A heartbeat reader whose database can go down."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {
            name: {"status": "up", "pid": 100 + i, "lastHeartbeatSecondsAgo": 0.4, "instances": 1, "lag": 0}
            for i, name in enumerate(SERVICES)}
        self.down = False

    async def __call__(self) -> dict[str, dict[str, Any]]:
        if self.down:
            raise ConnectionRefusedError("connection refused")
        return {name: dict(row) for name, row in self.rows.items()}


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


@pytest.fixture
def heartbeats() -> Heartbeats:
    return Heartbeats()


@pytest.fixture
def health(heartbeats: Heartbeats, clock: list[float]) -> ServiceHealth:
    return ServiceHealth(heartbeats, STALE, clock=lambda: clock[0])


async def refresh_for(health: ServiceHealth, clock: list[float], seconds: float, every: float = 0.5) -> None:
    """What refresh_forever does over `seconds`, on the fake clock."""
    for _ in range(round(seconds / every)):
        clock[0] += every
        await health.refresh()


async def test_unreadable_heartbeats_make_every_service_unknown_after_the_stale_threshold(
        health: ServiceHealth, heartbeats: Heartbeats, clock: list[float], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="boxoffice.entrypoints.gateway.state")
    await health.refresh()
    assert all(health.report(name)["status"] == "up" for name in SERVICES)
    assert health.is_up("booking")

    heartbeats.down = True
    await refresh_for(health, clock, 2.0)
    # Within the threshold the last read still stands, aged.
    assert health.report("booking")["status"] == "up" and health.is_up("booking")
    assert health.report("booking")["lastHeartbeatSecondsAgo"] == pytest.approx(2.4)

    await refresh_for(health, clock, STALE - 2.0)
    for name in SERVICES:
        shown = health.report(name)
        assert shown["status"] == "unknown", (name, shown)
        assert shown["pid"] == heartbeats.rows[name]["pid"]  # the last heartbeat read is still shown
        assert not health.is_up(name)

    await refresh_for(health, clock, 10.0)
    assert all(health.report(name)["status"] == "unknown" for name in SERVICES)
    heartbeats.down = False
    await refresh_for(health, clock, 0.5)
    assert all(health.report(name)["status"] == "up" for name in SERVICES) and health.is_up("booking")

    # Thirty failed reads, two lines: when the reads started failing and when they worked again.
    lines = [r for r in caplog.records if r.name == "boxoffice.entrypoints.gateway.state"]
    assert [r.levelname for r in lines] == ["WARNING", "WARNING"], [r.getMessage() for r in lines]
    assert "ConnectionRefusedError" in lines[0].getMessage()
    assert "works again after 15.0 s (30 failed attempts)" in lines[1].getMessage()


async def test_a_service_that_answered_recently_counts_as_up_while_the_heartbeats_are_unknown(
        health: ServiceHealth, heartbeats: Heartbeats, clock: list[float]) -> None:
    await health.refresh()
    heartbeats.down = True
    await refresh_for(health, clock, 8.0)
    health.seen_alive("booking")
    await refresh_for(health, clock, 1.0)
    assert health.report("booking")["status"] == "unknown"
    assert health.report("booking")["lastMessageSecondsAgo"] == pytest.approx(1.0)
    assert health.is_up("booking")  # its reply a second ago proves it
    await refresh_for(health, clock, STALE)
    assert not health.is_up("booking")


async def test_a_stale_heartbeat_is_down_and_a_service_never_seen_is_down(
        health: ServiceHealth, heartbeats: Heartbeats) -> None:
    heartbeats.rows["payment"] |= {"status": "down", "lastHeartbeatSecondsAgo": 30.0}
    del heartbeats.rows["catalog"]
    assert health.report("booking")["status"] == "unknown"  # nothing read yet
    await health.refresh()
    assert health.report("payment")["status"] == "down" and not health.is_up("payment")
    assert health.report("catalog") == {"status": "down"}


async def test_a_service_that_stops_beating_goes_down_between_reads(
        health: ServiceHealth, heartbeats: Heartbeats, clock: list[float]) -> None:
    heartbeats.rows["payment"]["lastHeartbeatSecondsAgo"] = 4.8
    await health.refresh()
    assert health.report("payment")["status"] == "up"
    clock[0] += 0.4  # the next read is not due yet, but that heartbeat is now too old
    assert health.report("payment")["status"] == "down" and not health.is_up("payment")


async def test_a_consumer_retrying_for_long_is_degraded(health: ServiceHealth, heartbeats: Heartbeats) -> None:
    heartbeats.rows["booking"] |= {"retryingForSeconds": 12.0, "lastError": "DeadlockDetectedError('deadlock')"}
    heartbeats.rows["payment"] |= {"retryingForSeconds": 3.0, "lastError": "TimeoutError()"}
    heartbeats.rows["catalog"] |= {"retryingForSeconds": 0}
    await health.refresh()
    booking = health.report("booking")
    assert booking["status"] == "degraded" and booking["lastError"] == "DeadlockDetectedError('deadlock')"
    assert booking["retryingForSeconds"] == 12.0
    assert not health.is_up("booking")  # it would not answer in time: queue the request at once
    assert health.report("payment")["status"] == "up"  # retrying a little is no news
    assert health.report("catalog")["status"] == "up"


class DownPool:
    async def fetchval(self, query: str) -> Any:
        raise ConnectionRefusedError("connection refused")


class UpPool:
    async def fetchval(self, query: str) -> Any:
        return 1


@pytest.fixture(scope="module")
def broker_port() -> Iterator[int]:
    """A port that takes connections, as a broker's does (the kernel completes them without an accept)."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)
        yield listening.getsockname()[1]


def get_health(health: ServiceHealth, pool: object, kafka_port: int) -> dict[str, Any]:
    app = create_app(Settings())
    app.state.gateway = SimpleNamespace(pool=pool, health=health,
                                        settings=SimpleNamespace(kafka_bootstrap=f"127.0.0.1:{kafka_port}"))
    answer = TestClient(app).get("/health")
    assert answer.status_code == 200
    return answer.json()


async def test_health_in_a_database_outage_says_degraded_database_down_and_services_unknown(
        health: ServiceHealth, heartbeats: Heartbeats, clock: list[float], broker_port: int) -> None:
    await health.refresh()
    body = get_health(health, UpPool(), broker_port)
    assert (body["status"], body["database"], body["kafka"]) == ("ok", "up", "up")
    heartbeats.down = True
    await refresh_for(health, clock, STALE + 1)
    body = get_health(health, DownPool(), broker_port)
    assert body["status"] == "degraded" and body["database"] == "down"
    assert {name: s["status"] for name, s in body["services"].items()} == {
        **{name: "unknown" for name in SERVICES}, "gateway": "up"}
    assert body["heartbeatsAgeSeconds"] == pytest.approx(STALE + 1)


async def test_health_shows_a_degraded_service(health: ServiceHealth, heartbeats: Heartbeats,
                                                broker_port: int) -> None:
    heartbeats.rows["notification"] |= {"retryingForSeconds": 12.5, "lastError": "SMTPServerDisconnected()"}
    await health.refresh()
    body = get_health(health, UpPool(), broker_port)
    assert body["status"] == "degraded" and body["database"] == "up"
    assert body["services"]["notification"]["status"] == "degraded"
    assert body["services"]["notification"]["lastError"] == "SMTPServerDisconnected()"
    assert body["services"]["booking"]["status"] == "up"


async def test_health_while_no_broker_takes_connections_says_degraded_kafka_down(health: ServiceHealth) -> None:
    await health.refresh()
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    body = get_health(health, UpPool(), closed_port)
    assert (body["status"], body["database"], body["kafka"]) == ("degraded", "up", "down")
    assert all(s["status"] == "up" for s in body["services"].values())  # their heartbeats are fresh


async def test_a_service_that_said_it_stopped_is_down_at_once_even_after_a_recent_reply(
        health: ServiceHealth, heartbeats: Heartbeats, clock: list[float]) -> None:
    await health.refresh()
    health.seen_alive("booking")  # its last reply, then it stops cleanly a second later
    clock[0] += 1.5
    heartbeats.rows["booking"] |= {"lastHeartbeatSecondsAgo": 0.5, "stopped": True}
    await health.refresh()
    assert health.report("booking")["status"] == "down" and not health.is_up("booking")

    clock[0] += 1.0  # a new process answers before its first heartbeat is read: up, by its reply
    health.seen_alive("booking")
    assert health.is_up("booking")
