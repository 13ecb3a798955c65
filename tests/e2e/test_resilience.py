"""Dependencies that blink: the database stops and comes back; the platform reports it and carries on."""

from __future__ import annotations

import time
from pathlib import Path

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


STALE_SECONDS = 5.0  # BOXOFFICE_HEARTBEAT_STALE_SECONDS, unset for the platform


def log_lines(path: Path, text: str) -> int:
    return sum(text in line for line in path.read_text(errors="replace").splitlines()) if path.exists() else 0


def test_a_database_outage_shows_in_health_and_bookings_are_queued_at_once(platform: RunningPlatform) -> None:
    """With the database down, /health says so and every service's status turns unknown; the gateway stops
    waiting for a booking service that cannot answer; one line per outage in the services' logs."""
    supervisor = Supervisor(platform.data_dir)
    logs = platform.data_dir / "logs"
    heartbeat_lines = {text: log_lines(logs / "booking.log", text)
                       for text in ("writing the heartbeat failed", "writing the heartbeat works again")}
    with httpx.Client(base_url=platform.base_url, timeout=30) as client:
        assert wait_healthy(client)["status"] == "ok"
        # The gateway keeps each event's seat ids once read: an unknown seat reads them and holds nothing.
        assert client.post("/bookings", json={"eventId": "coldplay_world_tour", "seatIds": ["P99"],
                                              "userId": "db_outage"}).status_code == 404
        supervisor.ctl("stop", "postgres", check=True)
        try:
            deadline = time.monotonic() + 3 * STALE_SECONDS
            while True:
                asked = time.monotonic()
                health = client.get("/health").json()
                assert time.monotonic() - asked < 3, "/health must answer promptly in an outage"
                assert health["status"] == "degraded" and health["database"] == "down", health
                booking = health["services"]["booking"]
                if (all(s["status"] == "unknown" for name, s in health["services"].items() if name != "gateway")
                        and booking.get("lastMessageSecondsAgo", STALE_SECONDS + 1) > STALE_SECONDS):
                    break
                assert time.monotonic() < deadline, health
                time.sleep(0.2)
            asked = time.monotonic()
            queued = client.post("/bookings", json={"eventId": "coldplay_world_tour", "seatIds": ["P25"],
                                                    "userId": "db_outage"})
            took = time.monotonic() - asked
            assert queued.status_code == 202 and queued.json()["status"] == "queued", queued.text
            assert took < 1.0, f"202 after {took:.2f} s: the gateway waited for the booking service"

            shown = platform.cli("status")
            assert shown.returncode == 0 and "Traceback" not in shown.stdout + shown.stderr, shown
            notes = [line for line in shown.stdout.splitlines() if "heartbeats not shown" in line]
            assert len(notes) == 1 and "database is not reachable" in notes[0], shown.stdout
        finally:
            supervisor.ctl("start", "postgres", check=True)
        assert wait_healthy(client)["status"] == "ok"
        deadline = time.monotonic() + 30
        while (outcome := client.get(queued.json()["statusUrl"]).json())["status"] != "processed":
            assert time.monotonic() < deadline, outcome
            time.sleep(0.3)
        assert outcome["result"]["status"] == "pending", outcome
        client.delete(f"/bookings/{outcome['result']['bookingId']}")
    # However many heartbeats failed, the booking service wrote one line when they started and one when
    # they worked again.
    assert {text: log_lines(logs / "booking.log", text) - before for text, before in heartbeat_lines.items()} == {
        text: 1 for text in heartbeat_lines}


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

