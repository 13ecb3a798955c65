"""A bench's options out of range are refused before any platform starts, with the option named; before,
`bench holds --clients 0` and `bench live --connections abc` ended in a stack trace and `bench queue
--visitors -1` in "INVARIANT VIOLATED"."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from boxoffice.entrypoints import cli


@pytest.mark.parametrize(("arguments", "option"), [
    (["holds", "--requests", "-5"], "--requests"),
    (["holds", "--clients", "0"], "--clients"),
    (["holds", "--seats", "1"], "--seats"),
    (["holds", "--max-seats", "0"], "--max-seats"),
    (["lifecycle", "--confirms", "0"], "--confirms"),
    (["lifecycle", "--hold-seconds", "0"], "--hold-seconds"),
    (["lifecycle", "--clients", "-1"], "--clients"),
    (["live", "--connections", "abc"], "--connections"),
    (["live", "--connections", "0"], "--connections"),
    (["live", "--connections", "100,,1000"], "--connections"),
    (["live", "--rate", "0"], "--rate"),
    (["queue", "--visitors", "-1"], "--visitors"),
    (["queue", "--early", "2"], "--early"),
    (["queue", "--admit-per-minute", "0"], "--admit-per-minute"),
    (["chaos", "--seconds", "0"], "--seconds"),
])
def test_an_option_out_of_range_is_refused_before_anything_starts(arguments: list[str], option: str) -> None:
    result = CliRunner().invoke(cli.app, ["bench", *arguments])
    assert result.exit_code == 2, result.output
    assert "Invalid value for" in result.output and option in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
