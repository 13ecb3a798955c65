"""A benchmark's platform is stopped whatever happens, and leaves its logs, not its database, behind."""

from __future__ import annotations

import contextlib
import shutil
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
def test_the_database_and_the_mailbox_go_and_the_logs_stay(fake_platform: list[str], fails: bool) -> None:
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
