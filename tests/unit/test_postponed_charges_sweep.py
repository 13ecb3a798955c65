"""The sweep that asks again about postponed charges logs a database outage once at its start and once at its
end, however many passes it fails (docs/operations.md: one warning per outage)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from boxoffice.bootstrap.payment import retry_postponed_forever


class Handler:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.passes = 0

    async def retry_postponed(self) -> int:
        self.passes += 1
        if self.passes <= self.failures:
            raise ConnectionRefusedError("connection refused")
        return 0


async def test_an_outage_of_many_passes_is_two_lines(caplog: pytest.LogCaptureFixture) -> None:
    handler = Handler(failures=8)
    caplog.set_level(logging.DEBUG, logger="boxoffice")
    sweep = asyncio.create_task(retry_postponed_forever(handler, every=0))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(5):
            while handler.passes < 12:
                await asyncio.sleep(0)
    finally:
        sweep.cancel()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "connection refused" in warnings[0]
