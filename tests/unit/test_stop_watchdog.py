"""A process whose clean stop waits on a broker or database that died exits, so its supervisor restarts it.

Found from outside: after the broker was killed, the booking service began to stop (an offset commit had
hung) and then waited for ever in its clean-up, RUNNING for the supervisor, deciding nothing, for a minute
until killed by hand."""

from __future__ import annotations

import subprocess
import sys

STUCK = """
import time
from boxoffice.bootstrap import exits_if_stuck
with exits_if_stuck("stopping booking's consumer", seconds=0.3):
    time.sleep(60)
"""

QUICK = """
import time
from boxoffice.bootstrap import exits_if_stuck
with exits_if_stuck("stopping booking's consumer", seconds=0.3):
    pass
time.sleep(0.9)
print("still running")
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


def test_a_stop_that_hangs_ends_the_process_and_says_where_it_waited() -> None:
    stuck = run(STUCK)
    assert stuck.returncode == 1
    assert "stopping booking's consumer took longer than 0.3 s; exiting" in stuck.stderr
    assert 'File "<string>", line 5' in stuck.stderr  # the sleep it waited in


def test_a_stop_that_finishes_in_time_leaves_the_process_alone() -> None:
    quick = run(QUICK)
    assert quick.returncode == 0 and quick.stdout == "still running\n", quick.stderr
