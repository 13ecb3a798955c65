"""`boxoffice bench` alone runs what CONTRACT §7 lists: the hold crowd against raw PostgreSQL, then live connections."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from boxoffice.bench import holds, live
from boxoffice.entrypoints import cli


def test_bench_alone_runs_the_hold_crowd_then_live_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(holds, "run", lambda *args: ran.append(("holds", args[:5])))
    monkeypatch.setattr(live, "run", lambda *args: ran.append(("live", args[:4])))
    done = CliRunner().invoke(cli.app, ["bench"])
    assert done.exit_code == 0, done.output
    assert ran == [("holds", (20_000, 500, 2_000, 3, 1)), ("live", ([100, 1000], 50.0, 6.0, False))]
    assert "bench live --connections 100,1000 --seconds 6" in done.output


def test_a_bench_named_runs_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr(holds, "run", lambda *args: ran.append("holds"))
    monkeypatch.setattr(live, "run", lambda *args: ran.append("live"))
    assert CliRunner().invoke(cli.app, ["bench", "live", "--connections", "10", "--seconds", "1"]).exit_code == 0
    assert ran == ["live"]
