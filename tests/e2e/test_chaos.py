"""Fault injection: services SIGKILLed at random moments during a mixed crowd; afterwards nothing accepted is
lost, nothing is sold twice, every confirmation was charged and emailed once, and every view agrees."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from boxoffice.bench.chaos import chaos
from tests.platforms import RunningPlatform, start_platform

SEED = 20261125


@pytest.fixture(scope="module")
def chaos_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    yield from start_platform(tmp_path_factory.mktemp("chaos"), BOXOFFICE_HOLD_SECONDS="3",
                              BOXOFFICE_PAYMENT_LATENCY_MS="50")


async def test_nothing_is_lost_or_sold_twice_while_services_are_killed(chaos_platform: RunningPlatform) -> None:
    print(f"chaos seed {SEED}: replay with `boxoffice bench chaos --seconds 45 --seed {SEED}`")
    runtime = chaos_platform.runtime
    results, journal, stats = await chaos(chaos_platform.base_url, str(runtime["database_url"]),
                                          chaos_platform.data_dir, str(runtime["mailbox_url"]), 45, SEED)
    print("kills:", journal.kills, "traffic:", stats)

    assert len(journal.kills) >= 5, journal.kills
    assert stats["bookings"].get("confirmed", 0) > 0 and stats["bookings"].get("expired", 0) > 0, stats
    assert results == dict.fromkeys(results, 0), results
