"""Each benchmark runs a platform of its own, in a fresh directory, and stops it after."""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from boxoffice.config import Settings

# What a stopped benchmark platform no longer needs: its database and its mailbox, over 100 MB after a run.
DATA_LEFT_BEHIND = ("pgdata", "mailbox")


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt


def fresh_data_dir(prefix: str = "boxoffice-bench-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


@contextlib.contextmanager
def own_platform(settings: Settings, console: Console) -> Iterator[Any]:
    """Starts the platform, yields its runtime and stops it, whatever happened. Its database and mailbox go
    with it; the logs stay, and the last line printed says where."""
    from boxoffice import platform

    # A bench stopped with SIGTERM (`kill`, `timeout`) stops its platform too, as on Ctrl-C: without this, the
    # interpreter ended at once and left the platform running.
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        with console.status("starting the platform..."):
            runtime = platform.up(settings)  # stopped below also when interrupted halfway
        yield runtime
    finally:
        with console.status("stopping the platform..."):
            platform.down(settings)
        signal.signal(signal.SIGTERM, previous)
        for name in DATA_LEFT_BEHIND:
            shutil.rmtree(settings.data_path / name, ignore_errors=True)
        console.print(f"platform stopped; its logs are in {settings.data_path / 'logs'}")
