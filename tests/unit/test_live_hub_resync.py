"""The live hub's gap resync outlives a database outage, and says so in two lines, not one per pass."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from boxoffice import messages as topics
from boxoffice.service_layer import live_hub
from boxoffice.service_layer.live_hub import LiveHub
from tests.unit.test_live_seat_map import change, seats


async def test_a_failing_reload_is_retried_quietly_until_the_database_is_back(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(live_hub, "GAP_RESYNC_SECONDS", 0.0)
    caplog.set_level(logging.INFO, logger="boxoffice.service_layer.live_hub")
    failures, snapshot_seq = [0], [0]

    async def load(event_id: str) -> tuple[int, list[dict[str, Any]]] | None:
        if failures[0]:
            failures[0] -= 1
            raise ConnectionRefusedError("connection refused")
        return snapshot_seq[0], seats("A1", "A2")

    hub = LiveHub(load)
    await hub.seat_map("ev")
    failures[0], snapshot_seq[0] = 5, 7  # the database goes down for five passes; changes 1-7 happened
    hub.on_messages([change(topics.SEAT_RESERVED, 3, "A1")])  # change 1 and 2 never come
    assert hub.maps["ev"].gap_since is not None

    task = asyncio.create_task(hub.resync_gaps_forever(every=0.01))
    try:
        async with asyncio.timeout(5):
            while hub.maps["ev"].seq != 7:
                assert not task.done(), task
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert hub.maps["ev"].gap_since is None
    lines = [r.getMessage() for r in caplog.records if r.name == "boxoffice.service_layer.live_hub"]
    assert len(lines) == 3, lines
    assert "change 1 never arrived" in lines[0]
    assert lines[1].startswith("reloading seat maps failed (ConnectionRefusedError")
    assert lines[2].startswith("reloading seat maps works again after")
