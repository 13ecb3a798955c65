"""The embedded PostgreSQL asks every connection for the password, which only the platform's user can read;
a cluster made by an earlier version, which trusted every local connection, is locked down at the next `up`.
The services' role owns their database and may do nothing beyond it; a database made by an earlier version,
whose objects the superuser owned, is handed to that role."""

from __future__ import annotations

import asyncio
import stat
import subprocess
from pathlib import Path

import asyncpg
import pytest

from boxoffice.adapters.embedded import (
    SERVICE_ROLE,
    EmbeddedPostgres,
    _pg_bin,
    free_port,
    pg_run_as_user,
)
from boxoffice.adapters.postgres import migrate


def _start(postgres: EmbeddedPostgres, workdir: Path) -> subprocess.Popen[bytes]:
    with (workdir / "postgres.log").open("wb") as log:  # the server keeps its own descriptor
        server = subprocess.Popen([*postgres.command(), "-c", "fsync=off"], stdout=log, stderr=subprocess.STDOUT,
                                  user=pg_run_as_user())
    postgres.wait_until_listening()
    return server


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(2)
    server.wait(10)


async def _connect(postgres: EmbeddedPostgres, password: str | None) -> asyncpg.Connection:
    for _ in range(100):
        try:
            return await asyncpg.connect(host=postgres.host, port=postgres.port, user="postgres", password=password,
                                         database="postgres")
        except asyncpg.CannotConnectNowError:  # still starting up
            await asyncio.sleep(0.1)
    raise TimeoutError("the server did not finish starting")


def _made_as_earlier_versions_made_it(postgres: EmbeddedPostgres) -> None:
    postgres.pgdata.mkdir(parents=True)
    user = pg_run_as_user()
    if user:
        postgres._let_server_through(user)  # noqa: SLF001
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


async def test_the_server_listens_on_no_tcp_port_only_on_a_socket_that_only_its_user_can_reach(
        tmp_path: Path) -> None:
    """A TCP port picked for it could be bound first by another local user, who would ask the services for their
    password in clear text (asyncpg sends it) and take the database over."""
    import os
    import socket

    postgres = EmbeddedPostgres(tmp_path, free_port())
    (tmp_path / "pgsocket").mkdir(mode=0o777)  # left by somebody else: not trusted, made afresh
    (tmp_path / "pgsocket" / "planted").touch()
    postgres.init()
    server = _start(postgres, tmp_path)
    try:
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", postgres.port), 2):
            pass
        kept = postgres.socket_dir.stat()
        assert stat.S_IMODE(kept.st_mode) == 0o700 and not (postgres.socket_dir / "planted").exists()
        assert stat.S_IMODE(postgres.socket_path.stat().st_mode) == 0o700
        assert kept.st_uid == postgres.pgdata.stat().st_uid  # the server's own user
        if os.geteuid() == 0:
            assert kept.st_uid != 0  # a system user of its own: other users cannot enter
        connection = await _connect(postgres, postgres.password)
        assert await connection.fetchval("SELECT inet_server_addr()") is None  # a Unix socket
        await connection.close()
    finally:
        _stop(server)


async def test_a_data_directory_too_deep_for_a_socket_path_gets_a_private_one_of_its_own(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    postgres = EmbeddedPostgres(deep, free_port())
    postgres.init()
    server = _start(postgres, deep)
    try:
        assert len(str(postgres.socket_path)) < 100 and not postgres.socket_dir.is_relative_to(deep)
        assert stat.S_IMODE(postgres.socket_dir.stat().st_mode) == 0o700
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


async def _as_services(postgres: EmbeddedPostgres, database: str = "boxoffice") -> asyncpg.Connection:
    return await asyncpg.connect(host=postgres.host, port=postgres.port, user=SERVICE_ROLE,
                                 password=postgres.service_password, database=database)


async def test_the_services_role_owns_its_database_and_can_do_nothing_beyond_it(tmp_path: Path) -> None:
    postgres = EmbeddedPostgres(tmp_path, free_port())
    postgres.init()
    assert stat.S_IMODE(postgres.service_password_file.stat().st_mode) == 0o600
    assert postgres.service_password != postgres.password
    server = _start(postgres, tmp_path)
    try:
        await postgres.provision()
        await asyncio.to_thread(migrate, postgres.dsn)
        connection = await _as_services(postgres)
        try:
            assert await connection.fetchval("SELECT count(*) FROM alembic_version") == 1
            role = await connection.fetchrow("SELECT * FROM pg_roles WHERE rolname = current_user")
            assert not any(role[a] for a in ("rolsuper", "rolcreaterole", "rolcreatedb", "rolreplication",
                                             "rolbypassrls"))
            # Not a member of pg_execute_server_program, pg_read_server_files or any other role.
            assert await connection.fetchval("SELECT count(*) FROM pg_auth_members WHERE member = $1::regrole",
                                             SERVICE_ROLE) == 0
            for refused in ("COPY (SELECT 1) TO PROGRAM 'id'", "COPY alembic_version FROM '/etc/passwd'",
                            "SELECT pg_read_file('/etc/passwd')", "CREATE ROLE intruder SUPERUSER LOGIN",
                            "ALTER ROLE boxoffice SUPERUSER", "CREATE DATABASE elsewhere",
                            "SELECT rolpassword FROM pg_authid", "ALTER SYSTEM SET log_statement = 'none'"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await connection.execute(refused)
        finally:
            await connection.close()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(host=postgres.host, port=postgres.port, user="postgres",
                                  password=postgres.service_password, database="postgres")
    finally:
        _stop(server)


async def test_a_database_of_an_earlier_version_is_handed_to_the_services_role(tmp_path: Path) -> None:
    postgres = EmbeddedPostgres(tmp_path, free_port())
    postgres.init()
    server = _start(postgres, tmp_path)
    try:
        # As earlier versions did: the database and every object in it made by the superuser.
        superuser = await _connect(postgres, postgres.password)
        await superuser.execute("CREATE DATABASE boxoffice")
        await superuser.close()
        superuser_dsn = postgres.dsn_as("postgres", postgres.password)
        await asyncio.to_thread(migrate, superuser_dsn)
        superuser = await asyncpg.connect(superuser_dsn)
        await superuser.execute("""
            CREATE TYPE mood AS ENUM ('calm'); CREATE TYPE pair AS (a int, b int); CREATE DOMAIN positive AS int;
            CREATE SEQUENCE standalone; CREATE VIEW booked AS SELECT 1 AS one;
            CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42'""")
        await superuser.close()
        await postgres.provision()
        connection = await _as_services(postgres)
        try:
            foreign = await connection.fetch("""
                SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relowner <> current_user::regrole""")
            assert foreign == []
            assert await connection.fetch("""
                SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace
                   AND typowner <> current_user::regrole
                UNION ALL SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
                   AND proowner <> current_user::regrole""") == []
            assert await connection.fetchval(
                "SELECT nspowner = current_user::regrole FROM pg_namespace WHERE nspname = 'public'")
            # What a later migration does as the role: change a table, move a sequence, write a row.
            async with connection.transaction():
                await connection.execute("ALTER TABLE seats ADD COLUMN probe int")
                await connection.execute("CREATE TABLE probe (id bigserial PRIMARY KEY)")
                await connection.execute("UPDATE alembic_version SET version_num = version_num")
        finally:
            await connection.close()
        await asyncio.to_thread(migrate, postgres.dsn)
        await postgres.provision()  # again: nothing to do, nothing fails
    finally:
        _stop(server)


@pytest.mark.skipif(pg_run_as_user() is None, reason="PostgreSQL runs as a user of its own only when we are root")
async def test_a_cluster_under_a_private_directory_runs_without_opening_it_to_other_local_users(
        tmp_path: Path) -> None:
    """Found from outside, as a local user: the first `up` as root gave every directory above the data directory
    and the programs read and pass rights for everyone (`/root` became 0755), and with them every file under it
    that its mode let others read. PostgreSQL's user alone is let through now."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    notes = home / "notes.txt"
    notes.write_text("private")
    notes.chmod(0o644)
    postgres = EmbeddedPostgres(home / ".boxoffice", free_port())
    for _ in range(2):  # then again after the owner closed the directory once more
        postgres.init()
        server = _start(postgres, tmp_path)
        try:
            connection = await _connect(postgres, postgres.password)
            assert await connection.fetchval("SELECT current_setting('data_directory')") == str(postgres.pgdata)
            await connection.close()
        finally:
            _stop(server)
        assert stat.S_IMODE(home.stat().st_mode) & 0o007 == 0
        home.chmod(0o700)
    nobody = await asyncio.to_thread(subprocess.run, ["cat", str(notes)], capture_output=True, user="nobody",
                                     text=True)
    assert nobody.returncode != 0 and "Permission denied" in nobody.stderr
    assert notes.read_text() == "private"  # the file is there, for its owner
