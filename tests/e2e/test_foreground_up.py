"""A foreground `boxoffice up` ends when its platform is stopped by a `boxoffice down` from elsewhere. Before, it
kept waiting for Ctrl-C, and that Ctrl-C, given after a later `up --detach`, stopped the newer platform."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from boxoffice.adapters.embedded import free_port
from boxoffice.adapters.supervisor import Supervisor


def test_a_foreground_up_ends_when_down_stops_its_platform(tmp_path: Path) -> None:
    with _up_in_the_foreground(tmp_path) as (up, log, env):
        _wait_until_up(up, log)
        down = subprocess.run([sys.executable, "-m", "boxoffice", "down"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert down.returncode == 0 and "boxoffice stopped." in down.stdout, down
        assert up.wait(timeout=30) == 0, log.read_text()
        assert "boxoffice was stopped (by `boxoffice down`)." in log.read_text()
        assert Supervisor(tmp_path / "data").pid() is None


@contextlib.contextmanager
def _up_in_the_foreground(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, dict[str, str]]]:
    """A foreground `up`, ended (and its platform stopped) whatever the test found."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    env |= {"BOXOFFICE_DATA_DIR": str(tmp_path / "data"), "BOXOFFICE_HTTP_PORT": str(free_port())}
    log = tmp_path / "up.txt"
    with log.open("w") as out:
        up = subprocess.Popen([sys.executable, "-m", "boxoffice", "up"], env=env, stdout=out,
                              stderr=subprocess.STDOUT, text=True)
    try:
        yield up, log, env
    finally:
        if up.poll() is None:
            up.terminate()
            up.wait(timeout=60)
        subprocess.run([sys.executable, "-m", "boxoffice", "down"], env=env, capture_output=True, timeout=120)


def _wait_until_up(up: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 180
    while "Press Ctrl-C to stop." not in log.read_text():
        assert up.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def test_closing_the_terminal_of_a_foreground_up_stops_its_platform(tmp_path: Path) -> None:
    with _up_in_the_foreground(tmp_path) as (up, log, _):
        _wait_until_up(up, log)
        up.send_signal(signal.SIGHUP)
        assert up.wait(timeout=120) == 0, log.read_text()
        assert "boxoffice stopped." in log.read_text()
        assert Supervisor(tmp_path / "data").pid() is None


def test_a_foreground_up_killed_while_starting_leaves_nothing_running(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "data")
    with _up_in_the_foreground(tmp_path) as (up, log, _):
        deadline = time.monotonic() + 60
        while supervisor.pid() is None:  # the supervisor runs: the platform is on its way up
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) != 0, log.read_text()
        assert "boxoffice stopped before it was up." in log.read_text()
        assert supervisor.pid() is None
