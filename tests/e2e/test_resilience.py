"""Dependencies that blink: the database stops and comes back; the platform reports it and carries on."""

from __future__ import annotations

import time

import httpx

from boxoffice.adapters.supervisor import Supervisor
from tests.platforms import RunningPlatform


def wait_healthy(client: httpx.Client, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        health = client.get("/health").json()
        if health["status"] == "ok" or time.monotonic() > deadline:
            return health
        time.sleep(0.2)


def test_database_restart_answers_503_meanwhile_and_everything_recovers(platform: RunningPlatform) -> None:
    supervisor = Supervisor(platform.data_dir)
    with httpx.Client(base_url=platform.base_url, timeout=30) as client:
        assert wait_healthy(client)["status"] == "ok"
        supervisor.ctl("stop", "postgres", check=True)
        try:
            down = client.get("/events")
            assert down.status_code == 503 and down.json()["code"] == "database_unavailable"
            assert down.headers["retry-after"] == "2"
            assert client.get("/health").json()["database"] == "down"
        finally:
            supervisor.ctl("start", "postgres", check=True)
        assert wait_healthy(client)["status"] == "ok"
        held = client.post("/bookings", json={"eventId": "taylor_swift_concert", "seatIds": ["K7"],
                                              "userId": "after_db_restart"})
        assert held.status_code == 201, held.text


def test_status_shows_every_service_running(platform: RunningPlatform) -> None:
    shown = platform.cli("status")
    assert shown.returncode == 0
    for service in ("gateway", "booking", "payment", "catalog", "notification", "realtime", "broker", "postgres"):
        assert any(line.split("│")[1].strip() == service and "RUNNING" in line
                   for line in shown.stdout.splitlines() if line.count("│") > 2), (service, shown.stdout)


def test_an_embedded_broker_restart_is_survived(platform: RunningPlatform) -> None:
    """The embedded broker forgets topics, messages and groups when it restarts: services notice, start
    afresh, and bookings work again; PostgreSQL stays the truth."""
    supervisor = Supervisor(platform.data_dir)
    with httpx.Client(base_url=platform.base_url, timeout=30) as client:
        assert wait_healthy(client)["status"] == "ok"
        supervisor.ctl("restart", "broker", check=True)
        accepted: list[dict] = []
        deadline = time.monotonic() + 60
        while True:
            answer = client.post("/bookings", json={"eventId": "jazz_night", "seatIds": [f"H{len(accepted) + 1}"],
                                                    "userId": "after_broker_restart"})
            assert answer.status_code in (201, 202, 503), answer.text
            if answer.status_code in (201, 202):
                accepted.append(answer.json())
            if answer.status_code == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert accepted and accepted[-1].get("status") == "pending", accepted
        for queued in accepted[:-1]:  # a 202 still reaches its outcome
            outcome_deadline = time.monotonic() + 30
            while client.get(queued["statusUrl"]).json()["status"] != "processed":
                assert time.monotonic() < outcome_deadline, queued
                time.sleep(0.5)
        assert wait_healthy(client, timeout=60)["status"] == "ok"
