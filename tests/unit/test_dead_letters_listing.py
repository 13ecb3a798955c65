"""`boxoffice dead-letters` shows what a dead letter's record says as plain text on one line: the error quotes
the message it could not handle, and anyone who can write to the broker can forge a record, so markup, escape
sequences and line breaks in it are shown as they are, never obeyed (and never stop the listing)."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from boxoffice.adapters import dead_letters
from boxoffice.adapters.dead_letters import DeadLetter
from boxoffice.entrypoints import cli

FORGED = DeadLetter(
    id="[link=http://evil.example]click[/link]", topic="seat.reservation.requested",
    consumer="booking\x1b[2J", dead_at="2026-12-07T12:00:00Z\n│ fake │ row │",
    error="MalformedMessage: type is '[/x]', not the topic it was read from\x00", partition=0, offset=7,
    key=b"k", value=b"{}")


@pytest.fixture
def listed(monkeypatch: pytest.MonkeyPatch) -> Any:
    async def read(bootstrap: str, topics: list[str] | None = None, **_: Any) -> list[DeadLetter]:
        return [FORGED]

    monkeypatch.setattr(dead_letters, "read_dead_letters", read)
    monkeypatch.setattr(cli, "_kafka_bootstrap", lambda: "127.0.0.1:9")
    monkeypatch.setattr(cli, "_kafka_security", lambda: {})
    monkeypatch.setattr(cli, "console", Console(width=400))  # each row on one line
    return CliRunner().invoke(cli.app, ["dead-letters"])


def test_markup_in_a_dead_letter_is_shown_not_obeyed(listed: Any) -> None:
    assert listed.exit_code == 0, listed.output
    assert "type is '[/x]', not the topic" in listed.output
    assert "[link=http://evil.example]click[/link]" in listed.output


def test_escape_sequences_and_line_breaks_in_a_dead_letter_are_folded(listed: Any) -> None:
    assert "\x1b[2J" not in listed.output and "\x00" not in listed.output
    assert "booking [2J" in listed.output
    rows = [line for line in listed.output.splitlines() if "seat.reservation.requested" in line]
    assert len(rows) == 1 and "2026-12-07T12:00:00Z │ fake │ row │" in rows[0]


def test_an_id_given_to_replay_is_quoted_as_typed(monkeypatch: pytest.MonkeyPatch, listed: Any) -> None:
    done = CliRunner().invoke(cli.app, ["dead-letters", "--replay", "[/nope]"])
    assert done.exit_code == 1 and "no dead letter '[/nope]'" in done.output, done.output
