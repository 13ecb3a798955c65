"""`bench lifecycle --holds 0` (allowed by its options) ended in a stack trace once the payments were measured:
the expiry table took the earliest deadline of no holds. With nothing left to expire it now says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from boxoffice.bench.lifecycle import _print_expiry


def _printed(rows: list[dict[str, object]]) -> str:
    console = Console(record=True, width=200)
    _print_expiry(console, rows, hold_wall=0.5)
    return console.export_text()


def test_no_holds_left_to_expire_is_said_not_measured() -> None:
    assert "0 holds left to expire, 0 expired: nothing to measure" in _printed([])


def test_the_expiry_table_gives_the_spread_of_deadlines_and_the_lateness() -> None:
    deadline = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    rows = [{"status": "expired", "late_ms": late, "expires_at": deadline + timedelta(seconds=i / 10)}
            for i, late in enumerate([12.0, 20.0, 40.0])]
    printed = _printed(rows)
    assert "0.2 s (6/s)" in printed  # three deadlines over 0.2 s, placed in 0.5 s
    assert "40.0" in printed and "20.0" in printed
