"""The embedded PostgreSQL asks every connection for the password, which only the platform's user can read;
a cluster made by an earlier version, which trusted every local connection, is locked down at the next `up`."""

from __future__ import annotations

import asyncio
import stat
import subprocess
from pathlib import Path

import asyncpg
import pytest

from boxoffice.adapters.embedded import EmbeddedPostgres, _pg_bin, free_port, pg_run_as_user, wait_for_port


def _start(postgres: EmbeddedPostgres, workdir: Path) -> subprocess.Popen[bytes]:
    with (workdir / "postgres.log").open("wb") as log:  # the server keeps its own descriptor
        server = subprocess.Popen([*postgres.command(), "-c", "fsync=off"], stdout=log, stderr=subprocess.STDOUT,
                                  user=pg_run_as_user())
    wait_for_port(postgres.port)
    return server


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(2)
    server.wait(10)


async def _connect(postgres: EmbeddedPostgres, password: str | None) -> asyncpg.Connection:
    for _ in range(100):
        try:
            return await asyncpg.connect(host="127.0.0.1", port=postgres.port, user="postgres", password=password,
                                         database="postgres")
        except asyncpg.CannotConnectNowError:  # still starting up
            await asyncio.sleep(0.1)
    raise TimeoutError("the server did not finish starting")


def _made_as_earlier_versions_made_it(postgres: EmbeddedPostgres) -> None:
    postgres.pgdata.mkdir(parents=True)
    user = pg_run_as_user()
    if user:
        postgres._prepare_for_system_user(user)  # noqa: SLF001
    subprocess.run([str(_pg_bin() / "initdb"), "-D", str(postgres.pgdata), "--auth=trust", "-U", "postgres",
                    "--no-instructions"], check=True, capture_output=True, user=user)


async def test_a_new_cluster_asks_for_the_password_that_only_the_owner_can_read(tmp_path: Path) -> None:
    postgres = EmbeddedPostgres(tmp_path, free_port())
    postgres.init()
    assert stat.S_IMODE(postgres.password_file.stat().st_mode) == 0o600
    assert not postgres.trusts_local_connections()
    server = _start(postgres, tmp_path)
    try:
        with pytest.raises(asyncpg.InvalidPasswordError):
            await _connect(postgres, None)
        with pytest.raises(asyncpg.InvalidPasswordError):
            await _connect(postgres, "guessed")
        connection = await _connect(postgres, postgres.password)
        await connection.close()
    finally:
        _stop(server)


async def test_a_cluster_that_trusted_local_connections_is_locked_down(tmp_path: Path) -> None:
    postgres = EmbeddedPostgres(tmp_path, free_port())
    _made_as_earlier_versions_made_it(postgres)
    postgres.init()  # the password file; the cluster is kept
    assert postgres.trusts_local_connections()
    server = _start(postgres, tmp_path)
    try:
        (await _connect(postgres, None)).terminate()  # anyone on the machine, as superuser
        await postgres.lock_down()
        assert not postgres.trusts_local_connections()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await _connect(postgres, None)
        connection = await _connect(postgres, postgres.password)
        await connection.close()
    finally:
        _stop(server)
