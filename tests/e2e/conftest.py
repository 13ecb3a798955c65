"""The platform started as processes, exactly as a user starts it: `boxoffice up --detach`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from boxoffice.adapters.embedded import free_port


@dataclass(frozen=True)
class RunningPlatform:
    base_url: str
    env: dict[str, str]
    data_dir: Path

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "boxoffice", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    data_dir = tmp_path_factory.mktemp("platform")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    env |= {"BOXOFFICE_DATA_DIR": str(data_dir), "BOXOFFICE_HTTP_PORT": str(port),
            "BOXOFFICE_BOOKING_REPLY_SECONDS": "5"}
    running = RunningPlatform(f"http://127.0.0.1:{port}", env, data_dir)
    started = running.cli("up", "--detach", timeout=180)
    if started.returncode != 0:
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (data_dir / "logs").glob("*.log"))
        running.cli("down")
        pytest.fail(f"boxoffice up failed:\n{started.stdout}\n{started.stderr}\n{logs}")
    try:
        yield running
    finally:
        stopped = running.cli("down")
        assert stopped.returncode == 0, stopped.stderr
