"""A benchmark's platform is stopped whatever happens, and leaves its logs, not its database, behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from rich.console import Console

from boxoffice import platform
from boxoffice.bench.running import fresh_data_dir, own_platform
from boxoffice.config import Settings


@pytest.fixture
def fake_platform(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def up(settings: Settings) -> str:
        calls.append("up")
        for name in ("pgdata/base", "mailbox/new", "logs"):
            (settings.data_path / name).mkdir(parents=True)
        (settings.data_path / "pgdata" / "base" / "1").write_bytes(b"\0" * 1024)
        (settings.data_path / "logs" / "booking.log").write_text("booking started\n")
        for secret in ("postgres.password", "boxoffice.password", "mailbox.key", "supervisord.conf", "runtime.json"):
            (settings.data_path / secret).write_text("kept 0600\n")
        (settings.data_path / "pgsocket").mkdir()
        return "runtime"

    def down(settings: Settings) -> bool:
        calls.append("down")
        return True

    monkeypatch.setattr(platform, "up", up)
    monkeypatch.setattr(platform, "down", down)
    return calls


def left_behind(data_dir: Path) -> list[str]:
    return sorted(str(path.relative_to(data_dir)) for path in data_dir.rglob("*"))


@pytest.mark.parametrize("fails", [False, True])
def test_the_database_the_mailbox_and_the_secrets_go_and_the_logs_stay(fake_platform: list[str], fails: bool) -> None:
    data_dir = fresh_data_dir("boxoffice-test-bench-")
    console = Console(record=True, width=200)
    try:
        with pytest.raises(RuntimeError) if fails else contextlib.nullcontext(), own_platform(
                Settings(data_dir=data_dir), console) as runtime:
            assert runtime == "runtime"
            if fails:
                raise RuntimeError("the benchmark broke")
        assert fake_platform == ["up", "down"]
        assert left_behind(data_dir) == ["logs", "logs/booking.log"]
        assert f"its logs are in {data_dir / 'logs'}" in console.export_text()
    finally:
        shutil.rmtree(data_dir)


def test_a_bench_stopped_with_sigterm_stops_its_platform(fake_platform: list[str]) -> None:
    # Before, SIGTERM (kill, timeout) ended the interpreter at once and left the platform running.
    data_dir = fresh_data_dir("boxoffice-test-bench-")
    def ignored(*_: object) -> None:  # what the bench replaces; it lets this test fail rather than end pytest
        pass

    before = signal.signal(signal.SIGTERM, ignored)
    try:
        with pytest.raises(KeyboardInterrupt), own_platform(Settings(data_dir=data_dir), Console()):
            os.kill(os.getpid(), signal.SIGTERM)  # its handler runs before the next line
            time.sleep(5)
        assert fake_platform == ["up", "down"]
        assert signal.getsignal(signal.SIGTERM) is ignored
    finally:
        signal.signal(signal.SIGTERM, before)
        shutil.rmtree(data_dir)
