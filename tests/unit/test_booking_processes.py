"""BOXOFFICE_BOOKING_PROCESSES: `up` writes one supervisor program per booking process, all running the one
booking service (one consumer group); the other services stay single."""

from __future__ import annotations

from pathlib import Path

from boxoffice.adapters.supervisor import Supervisor
from boxoffice.config import SERVICES, Settings
from boxoffice.platform import Runtime, _is_instance_of, _programs, service_programs

RUNTIME = Runtime("127.0.0.1:9092", "postgresql://db", 8000, True, True, realtime_port=8001)


def test_booking_runs_as_several_programs_of_one_service(tmp_path: Path) -> None:
    settings = Settings(booking_processes=3, realtime_processes=1, kafka_bootstrap="127.0.0.1:9092",
                        database_url="postgresql://db")
    _, services = _programs(settings, RUNTIME, None, None, None)

    names = [p.name for p in services]
    assert names == ["gateway", "booking", "booking-2", "booking-3", "payment", "catalog", "notification",
                     "realtime", "waitingroom"]
    assert {tuple(p.command[-2:]) for p in services if p.name.startswith("booking")} == {("service", "booking")}
    Supervisor(tmp_path).write_config([], services)
    assert "programs=gateway,booking,booking-2,booking-3,payment" in (tmp_path / "supervisord.conf").read_text()


def test_one_process_each_by_default_but_two_realtime_processes() -> None:
    programs = [p for s in SERVICES for p in service_programs(s, Settings())]
    assert programs == [*SERVICES[:6], "realtime-2", *SERVICES[6:]] and SERVICES[5] == "realtime"


def test_a_process_is_addressed_by_its_program_name() -> None:
    assert _is_instance_of("booking-2", "booking") and _is_instance_of("booking-12", "booking")
    assert not _is_instance_of("booking", "booking") and not _is_instance_of("booking-x", "booking")
    assert not _is_instance_of("payment-2", "booking")
