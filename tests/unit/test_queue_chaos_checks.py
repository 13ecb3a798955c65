"""The waiting room chaos bench's checks can fail: each one flags a record set doctored to break it, and a
sound one passes (the e2e run in tests/e2e/test_chaos.py only ever shows them passing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from boxoffice.bench.queue_chaos import QueueJournal, judge

OPENED = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
RATE = 60  # one a second


def at(seconds: float) -> datetime:
    return OPENED + timedelta(seconds=seconds)


def sound() -> tuple[QueueJournal, dict[str, Any], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    journal = QueueJournal(kills=[(5.0, "waitingroom")], serving=[(4.0, 2), (6.0, 2), (9.0, 4)])
    places = {f"v{p}": {"visitor_id": f"v{p}", "queue_token": f"t{p}", "position": p} for p in range(1, 7)}
    journal.joins = {v: {"queueToken": p["queue_token"], "position": p["position"]} for v, p in places.items()}
    room = {"opened_at": OPENED, "serving_position": 4, "last_position": 6}
    admissions = [{"first_position": 1, "last_position": 2, "admitted_at": at(2)},
                  {"first_position": 3, "last_position": 4, "admitted_at": at(8)}]
    holds = [{"user_id": "v1", "created_at": at(3), "position": 1, "admitted_at": at(2)}]
    return journal, places, room, admissions, holds


def violated(*case: Any) -> dict[str, int]:
    return {name: value for name, value in judge(case[0], RATE, *case[1:]).items() if value}


def test_a_sound_run_passes() -> None:
    assert violated(*sound()) == {}


def test_each_broken_invariant_is_flagged() -> None:
    journal, places, room, admissions, holds = sound()
    del places["v6"]  # a join answered, its place lost
    places["v5"]["position"] = 4  # a position given twice
    places["v7"] = {"visitor_id": "v7", "queue_token": "t7", "position": None}  # left out of the opening
    admissions[1]["first_position"] = 2  # overlapping
    admissions.append({"first_position": 5, "last_position": 5, "admitted_at": at(3)})  # ahead of the rate
    holds.append({"user_id": "v9", "created_at": at(4), "position": None, "admitted_at": None})
    room["serving_position"] = 2
    journal.serving.append((8.0, 2))
    journal.rejoins_elsewhere = 1
    assert set(violated(journal, places, room, admissions, holds)) == {
        "answered joins without their place", "second joins answered with another place",
        "visitors without a position after the opening",
        "positions not 1..N once each", "admissions out of order or overlapping", "admissions ahead of the rate",
        "serving position stuck after the last kill", "holds without an admission"}
