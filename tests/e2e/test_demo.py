"""`boxoffice demo` (CONTRACT §6), as the README has a newcomer run it: the five scenarios on a platform of its own."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.platforms import RunningPlatform, start_platform


@pytest.fixture(scope="module")
def demo_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    yield from start_platform(Path(tmp_path_factory.mktemp("demo")))


def test_the_demo_runs_its_five_scenarios_and_its_hold_runs_out(demo_platform: RunningPlatform) -> None:
    demo = demo_platform.cli("demo", timeout=300)
    said = demo.stdout + demo.stderr
    assert demo.returncode == 0 and "Traceback" not in said, said
    assert "All five scenarios done" in said, said
    # Scenario 3 shows a hold released by its deadline, not a cancel standing in for it.
    ran_out = re.search(r"booked (\w+) and did not pay.*?booking expired [\d.]+ s after the deadline; seat \1 is "
                        r"AVAILABLE", said, re.S)
    assert ran_out is not None, said
    seats = {s["seatId"]: s["status"] for s in
             httpx.get(f"{demo_platform.base_url}/events/open_mic_night/seats", timeout=10).json()}
    assert seats[ran_out.group(1)] == "AVAILABLE"
    # Scenario 4 stopped and started the booking service: it is healthy again once it has rejoined its group.
    deadline = time.monotonic() + 60
    while (health := httpx.get(f"{demo_platform.base_url}/health", timeout=10).json())["status"] != "ok":
        assert time.monotonic() < deadline, health
        time.sleep(0.5)


def test_the_demo_with_its_quick_event_sold_out_takes_another_seat_and_ends_cleanly(
        demo_platform: RunningPlatform) -> None:
    with httpx.Client(base_url=demo_platform.base_url, timeout=30) as client:
        free = [s["seatId"] for s in client.get("/events/open_mic_night/seats").json() if s["status"] == "AVAILABLE"]
        for n, start in enumerate(range(0, len(free), 10)):
            held = client.post("/bookings", json={"eventId": "open_mic_night", "seatIds": free[start:start + 10],
                                                  "userId": f"fan_{n}"})
            assert held.status_code == 201, held.text
            paid = client.put(f"/bookings/{held.json()['bookingId']}/confirm",
                              json={"paymentId": f"sold_out_{n}", "amount": held.json()["amount"]})
            assert paid.status_code == 200, paid.text
    demo = demo_platform.cli("demo", timeout=300)
    said = demo.stdout + demo.stderr
    assert demo.returncode == 0 and "Traceback" not in said, said
    assert "every seat of open_mic_night is held or sold just now" in said, said
    assert "All five scenarios done" in said, said
