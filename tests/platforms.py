"""The platform started as processes, exactly as a user starts it: `boxoffice up --detach`.

Imported by tests/conftest.py, so the end-to-end and browser tests share one platform per session.
"""

from __future__ import annotations

import json
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

    @property
    def runtime(self) -> dict[str, object]:
        """Where `up` put the broker, the database and the mailbox."""
        return json.loads((self.data_dir / "runtime.json").read_text())

    def pid(self, service: str) -> int:
        from boxoffice.adapters.supervisor import Supervisor

        for name, state, description in Supervisor(self.data_dir).status():
            if name == service and state == "RUNNING":
                return int(description.split()[1].rstrip(","))
        raise LookupError(f"{service} is not running")

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "boxoffice", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)


# The session's shared platforms that are up, by fixture name, so that each can be stopped after the last test
# that uses it (tests/conftest.py): an idle platform still takes about half a core (its consumers' fetches).
SHARED: dict[str, RunningPlatform] = {}
_stopped: set[Path] = set()


def stop_platform(running: RunningPlatform) -> None:
    """`down`, once."""
    if running.data_dir in _stopped:
        return
    _stopped.add(running.data_dir)
    stopped = running.cli("down")
    assert stopped.returncode == 0, stopped.stderr


def _shared(name: str, data_dir: Path, **settings: str) -> Iterator[RunningPlatform]:
    for running in start_platform(data_dir, **settings):
        SHARED[name] = running
        try:
            yield running
        finally:
            SHARED.pop(name, None)


def start_platform(data_dir: Path, **settings: str) -> Iterator[RunningPlatform]:
    port = free_port()
    # Without XDG_RUNTIME_DIR, as for root on a fresh machine (and in CI): up prints no library's warning then.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_") and k != "XDG_RUNTIME_DIR"}
    env |= {"BOXOFFICE_DATA_DIR": str(data_dir), "BOXOFFICE_HTTP_PORT": str(port),
            "BOXOFFICE_BOOKING_REPLY_SECONDS": "5", **settings}
    running = RunningPlatform(f"http://127.0.0.1:{port}", env, data_dir)
    started = running.cli("up", "--detach", timeout=180)
    if started.returncode != 0:
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (data_dir / "logs").glob("*.log"))
        running.cli("down")
        pytest.fail(f"boxoffice up failed:\n{started.stdout}\n{started.stderr}\n{logs}")
    assert "RuntimeDirWarning" not in started.stdout + started.stderr, started.stderr
    try:
        yield running
    finally:
        stop_platform(running)


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    yield from _shared("platform", tmp_path_factory.mktemp("platform"))


@pytest.fixture(scope="session")
def short_hold_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """Holds of 2 seconds and a quick simulated provider, for the lifecycle tests."""
    yield from _shared("short_hold_platform", tmp_path_factory.mktemp("short_hold"), BOXOFFICE_HOLD_SECONDS="2",
                              BOXOFFICE_PAYMENT_LATENCY_MS="20")


@pytest.fixture(scope="session")
def proof_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """A waiting room that asks each join for a proof of work of 12 bits (quick to find in a test)."""
    yield from _shared("proof_platform", tmp_path_factory.mktemp("proof"), BOXOFFICE_QUEUE_PROOF_OF_WORK_BITS="12")


ADMIN = ("admin@boxoffice.test", "admin-password-1")


@pytest.fixture(scope="session")
def auth_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """Accounts on, with an admin, a low per-account rate limit and a small per-buyer seat cap."""
    yield from _shared(
        "auth_platform", tmp_path_factory.mktemp("auth"), BOXOFFICE_AUTH="on", BOXOFFICE_ADMIN_EMAIL=ADMIN[0],
        BOXOFFICE_ADMIN_PASSWORD=ADMIN[1], BOXOFFICE_RATE_LIMIT_USER_BURST="6",
        BOXOFFICE_RATE_LIMIT_USER_PER_MINUTE="30", BOXOFFICE_MAX_SEATS_PER_USER="4")
