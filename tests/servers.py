"""Real PostgreSQL and a real Kafka-protocol broker for tests, on free ports, stopped afterwards."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from boxoffice.adapters.embedded import (
    SERVICE_ROLE,
    EmbeddedPostgres,
    broker_command,
    free_port,
    pg_run_as_user,
    wait_for_port,
)


@dataclass(frozen=True)
class Servers:
    postgres: EmbeddedPostgres
    kafka_bootstrap: str

    @property
    def postgres_password(self) -> str:
        return self.postgres.password

    @property
    def service_password(self) -> str:
        return self.postgres.service_password

    def dsn(self, database: str = "boxoffice") -> str:
        """As the services connect: their role, not the superuser."""
        return self.postgres.dsn_as(SERVICE_ROLE, self.service_password, database)


def _stop(process: subprocess.Popen[bytes], signal_number: int) -> None:
    if process.poll() is None:
        process.send_signal(signal_number)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def embedded_servers(workdir: Path) -> Iterator[Servers]:
    postgres = EmbeddedPostgres(workdir, free_port())
    postgres.init()
    log = open(workdir / "postgres.log", "wb")  # noqa: SIM115 - closed below
    pg = subprocess.Popen([*postgres.command(), "-c", "fsync=off"], stdout=log, stderr=subprocess.STDOUT,
                          user=pg_run_as_user())
    broker_port = free_port()
    broker = subprocess.Popen(broker_command(broker_port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        postgres.wait_until_listening()
        wait_for_port(broker_port)
        yield Servers(postgres, f"127.0.0.1:{broker_port}")
    finally:
        _stop(broker, 15)
        _stop(pg, 2)
        log.close()
