"""`boxoffice status` when the heartbeats are unreadable (database down) and when a service is degraded."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from boxoffice import platform
from boxoffice.adapters.embedded import free_port
from boxoffice.entrypoints import cli

PROGRAMS = [("postgres", "STOPPED", "Dec 01 10:00 AM"), ("booking", "RUNNING", "pid 4321, uptime 0:05:00"),
            ("payment", "RUNNING", "pid 4322, uptime 0:05:00")]


class FakeSupervisor:
    def status(self) -> list[tuple[str, str, str]]:
        return PROGRAMS


@pytest.fixture
def running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "require_running", lambda settings: FakeSupervisor())


def test_a_database_outage_is_one_line_not_a_traceback(running: None, monkeypatch: pytest.MonkeyPatch) -> None:
    nothing_listens = f"postgresql://postgres@127.0.0.1:{free_port()}/boxoffice"
    monkeypatch.setattr(platform, "read_runtime", lambda settings: SimpleNamespace(database_url=nothing_listens))
    result = CliRunner().invoke(cli.app, ["status"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "heartbeats not shown" in line]
    assert len(notes) == 1 and "the database is not reachable" in notes[0], result.output
    assert "Traceback" not in result.output and "retrying" not in result.output
    assert any("booking" in line and "RUNNING" in line for line in result.output.splitlines())


def test_a_degraded_process_shows_its_last_error(running: None, monkeypatch: pytest.MonkeyPatch) -> None:
    booking: dict[str, Any] = {"pid": 4321, "lag": 3, "lastHeartbeatSecondsAgo": 0.4, "status": "degraded",
                               "retryingForSeconds": 12.3, "lastError": "UndefinedTableError('no seats')"}
    payment: dict[str, Any] = {"pid": 4322, "lag": 0, "lastHeartbeatSecondsAgo": 0.2, "status": "up"}
    monkeypatch.setattr(cli, "_heartbeats", lambda settings: (
        {"booking": booking, "payment": payment}, {4321: booking, 4322: payment}, None))
    result = CliRunner().invoke(cli.app, ["status"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "booking" in line)
    assert "0.4 s ago (degraded: retrying for 12 s, UndefinedTableError('no seats'))" in line, result.output
    assert "0.2 s ago (up)" in next(line for line in result.output.splitlines() if "payment" in line)
    assert "heartbeats not shown" not in result.output


def test_a_stopped_process_is_not_shown_up_by_its_last_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """Right after `stop`, the stopped service's last heartbeat is still fresh: it must not read "(up)"."""
    stopped = [("booking", "STOPPED", "Dec 01 10:05 AM"), ("payment", "RUNNING", "pid 4322, uptime 0:05:00")]
    monkeypatch.setattr(platform, "require_running", lambda settings: SimpleNamespace(status=lambda: stopped))
    booking: dict[str, Any] = {"pid": 4321, "lag": 0, "lastHeartbeatSecondsAgo": 1.5, "status": "up"}
    payment: dict[str, Any] = {"pid": 4322, "lag": 0, "lastHeartbeatSecondsAgo": 0.2, "status": "up"}
    monkeypatch.setattr(cli, "_heartbeats", lambda settings: (
        {"booking": booking, "payment": payment}, {4321: booking, 4322: payment}, None))
    result = CliRunner().invoke(cli.app, ["status"], terminal_width=200)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "booking" in line)
    assert "1.5 s ago (before it stopped)" in line and "(up)" not in line, result.output
    assert "0.2 s ago (up)" in next(line for line in result.output.splitlines() if "payment" in line)


def test_a_stopped_program_shows_when_on_the_24_hour_clock() -> None:
    from boxoffice.entrypoints.cli import _stopped_at

    assert _stopped_at("Dec 07 07:15 PM") == "stopped Dec 07 19:15"
    assert _stopped_at("Dec 07 12:05 AM") == "stopped Dec 07 00:05"
    assert _stopped_at("pid 4242, uptime 0:01:02") == "pid 4242, uptime 0:01:02"
