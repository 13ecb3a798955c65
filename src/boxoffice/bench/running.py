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

# What a stopped benchmark platform keeps: its logs. Its database and mailbox (over 100 MB after a run), its
# passwords, keys and supervisor configuration go with it.
KEPT_AFTER_A_RUN = "logs"


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt


def fresh_data_dir(prefix: str = "boxoffice-bench-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


@contextlib.contextmanager
def own_platform(settings: Settings, console: Console) -> Iterator[Any]:
    """Starts the platform, yields its runtime and stops it, whatever happened. Its database, mailbox and secrets
    go with it; the logs stay, and the last line printed says where."""
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
        for left in settings.data_path.iterdir():
            if left.name != KEPT_AFTER_A_RUN:
                if left.is_dir() and not left.is_symlink():
                    shutil.rmtree(left, ignore_errors=True)
                else:
                    left.unlink(missing_ok=True)
        console.print(f"platform stopped; its logs are in {settings.data_path / 'logs'}")
