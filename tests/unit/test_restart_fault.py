"""A restart fault whose first start of the server fails (supervisord then starts it again by itself, as in
production) is over once the server listens, and reports why the first start failed; a server that never
comes back ends the run with its log."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from boxoffice.adapters.embedded import free_port
from boxoffice.adapters.supervisor import Supervisor
from boxoffice.bench.faults import ChaosError, Fault, restart_program
from boxoffice.bench.faults import Programs as SupervisedPrograms


class Programs:
    def __init__(self, failed_starts: int) -> None:
        self.failed_starts = failed_starts
        self.calls: list[str] = []

    async def stop(self, program: str) -> None:
        self.calls.append(f"stop {program}")

    async def start(self, program: str) -> None:
        self.calls.append(f"start {program}")
        if self.failed_starts:
            self.failed_starts -= 1
            raise ChaosError(f"supervisord startProcess('{program}', True): <Fault 50: 'SPAWN_ERROR: {program}'>")

    def log_tail(self, program: str, lines: int = 5) -> str:
        return "FATAL:  lock file \"postmaster.pid\" already exists"


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


async def test_a_failed_first_start_is_reported_and_the_fault_ends_when_the_server_listens(listening: int) -> None:
    programs, fault = Programs(failed_starts=1), Fault("db-restart", 1.0, 0.0)
    await restart_program(programs, "postgres", listening, random.Random(1), fault, 0.0)  # type: ignore[arg-type]
    assert programs.calls == ["stop postgres", "start postgres"]
    assert fault.ended > 0
    assert "first start failed" in fault.detail and "SPAWN_ERROR" in fault.detail
    assert "postmaster.pid" in fault.detail


async def test_a_clean_restart_reports_only_how_long_it_was_down(listening: int) -> None:
    fault = Fault("db-restart", 1.0, 0.0)
    await restart_program(Programs(failed_starts=0), "postgres", listening, random.Random(1), fault,  # type: ignore[arg-type]
                          0.0)
    assert fault.detail.startswith("down ") and "failed" not in fault.detail


async def test_a_server_that_never_listens_again_ends_the_run_with_its_log(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
        raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")

    monkeypatch.setattr("boxoffice.bench.faults.wait_for_port", never)
    with pytest.raises(ChaosError, match=r"postgres not back: nothing listens.*postmaster\.pid"):
        await restart_program(Programs(failed_starts=1), "postgres", free_port(), random.Random(1),  # type: ignore[arg-type]
                              Fault("db-restart", 1.0, 0.0), 0.0)


def test_the_log_tail_is_the_programs_last_lines_on_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path
    (data_dir / "logs").mkdir()
    (data_dir / "logs" / "postgres.log").write_text("".join(f"line {i}\n" for i in range(8)))
    programs = SupervisedPrograms(Supervisor(data_dir))
    assert programs.log_tail("postgres", lines=3) == "line 5 | line 6 | line 7"
    assert programs.log_tail("broker").startswith("(no log: ")
