"""Brings the whole platform up and down: embedded servers, schema, topics, demo data, services."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from boxoffice.adapters.embedded import (
    EmbeddedPostgres,
    free_port,
    pg_run_as_user,
    wait_for_port,
)
from boxoffice.adapters.mailbox import MailboxProgram, mailbox_program
from boxoffice.adapters.supervisor import SERVICE_GROUP, Program, Supervisor
from boxoffice.config import SERVICES, Settings


class PlatformError(Exception):
    pass


@dataclass
class Runtime:
    """Where the running platform's parts are, written by `up` for the other commands."""

    kafka_bootstrap: str
    database_url: str
    http_port: int
    embedded_kafka: bool
    embedded_database: bool
    smtp_url: str = ""
    mailbox_url: str | None = None
    realtime_port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def urls(self) -> dict[str, str]:
        urls = {"gateway": self.base_url, "live monitor": f"{self.base_url}/", "api docs": f"{self.base_url}/docs",
                "waiting room": f"{self.base_url}/events/eras_tour_onsale/queue",
                "health": f"{self.base_url}/health", "metrics": f"{self.base_url}/metrics"}
        if self.mailbox_url:
            urls["mailbox"] = self.mailbox_url
        return urls


def runtime_file(settings: Settings) -> Path:
    return settings.data_path / "runtime.json"


def read_runtime(settings: Settings) -> Runtime | None:
    try:
        return Runtime(**json.loads(runtime_file(settings).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


# How long published outbox rows are kept when `up` runs the embedded broker, whose restarts forget them.
EMBEDDED_BROKER_RETAIN_SECONDS = 120.0


def _outbox_retention(settings: Settings, runtime: Runtime) -> float:
    """As configured; unset, kept only for the embedded broker (an external Kafka keeps what it acknowledged)."""
    if settings.outbox_retain_seconds is not None:
        return settings.outbox_retain_seconds
    return EMBEDDED_BROKER_RETAIN_SECONDS if runtime.embedded_kafka else 0.0


def _service_env(settings: Settings, runtime: Runtime) -> dict[str, str]:
    """Every setting `up` ran with (from the environment, .env or code), then where the parts are."""
    configured = {f"BOXOFFICE_{name.upper()}": str(value)
                  for name, value in settings.model_dump().items() if value is not None}
    if runtime.embedded_kafka:  # it takes plain connections only: credentials meant for another Kafka stay out
        configured = {name: value for name, value in configured.items() if not name.startswith("BOXOFFICE_KAFKA_SASL_")}
        configured["BOXOFFICE_KAFKA_SECURITY_PROTOCOL"] = "PLAINTEXT"
    return {
        **configured,
        "BOXOFFICE_KAFKA_BOOTSTRAP": runtime.kafka_bootstrap,
        "BOXOFFICE_OUTBOX_RETAIN_SECONDS": str(_outbox_retention(settings, runtime)),
        # Resolved here: the services reach the embedded broker by address, like an external one.
        "BOXOFFICE_TOPIC_PARTITIONS": str(settings.partitions),
        "BOXOFFICE_DATABASE_URL": runtime.database_url,
        "BOXOFFICE_HTTP_PORT": str(runtime.http_port),
        "BOXOFFICE_DATA_DIR": str(settings.data_path),
        "BOXOFFICE_SMTP_URL": runtime.smtp_url,
        "BOXOFFICE_REALTIME_PORT": str(runtime.realtime_port),
        "BOXOFFICE_REALTIME_URL": settings.realtime_url or f"http://127.0.0.1:{runtime.realtime_port}",
        "PYTHONUNBUFFERED": "1",
    }


def _programs(settings: Settings, runtime: Runtime, postgres: EmbeddedPostgres | None,
              broker_port: int | None, mailbox: MailboxProgram | None) -> tuple[list[Program], list[Program]]:
    infrastructure = []
    env = _service_env(settings, runtime)
    if mailbox is not None:  # with the settings `up` ran with (its log format, its nice)
        infrastructure.append(Program("mailbox", mailbox.command, 3, True, environment=env))
    if postgres is not None:
        infrastructure.append(Program("postgres", postgres.command(), 1, True, user=pg_run_as_user(),
                                      stopsignal="INT"))
    if broker_port is not None:
        # Through our entrypoint, which becomes the broker: each start of it counts a new Kafka epoch.
        infrastructure.append(Program("broker", [sys.executable, "-m", "boxoffice.entrypoints.broker",
                                                 str(broker_port)], 2, True, environment=env))
    services = [Program(program, [sys.executable, "-m", "boxoffice", "service", name], 10 + i, False,
                        environment=env)
                for i, name in enumerate(SERVICES) for program in service_programs(name, settings)]
    return infrastructure, services


def service_programs(service: str, settings: Settings) -> list[str]:
    """The supervisor programs of one service: booking runs as `booking`, `booking-2`, ... in one group;
    realtime as `realtime`, `realtime-2`, ..., each serving its share of the live connections."""
    count = {"booking": settings.booking_processes, "realtime": settings.realtime_processes}.get(service, 1)
    return [service] + [f"{service}-{n}" for n in range(2, count + 1)]


async def prepare(runtime: Runtime, settings: Settings, postgres: EmbeddedPostgres | None) -> None:
    """Schema, topics and demo data: idempotent, run by every `up`."""
    if postgres is not None:
        if postgres.trusts_local_connections():  # made by an earlier version: it asks for the password now
            await postgres.lock_down()
        await postgres.provision()  # the services' role; a database of an earlier version is handed to it
    from boxoffice.adapters.kafka import client_security

    await initialise(runtime.database_url, runtime.kafka_bootstrap, settings.partitions,
                     kafka_security=None if runtime.embedded_kafka else client_security(settings))


async def initialise(database_url: str, kafka_bootstrap: str, partitions: int, *, demo: bool = True,
                     kafka_security: dict[str, Any] | None = None) -> None:
    """Schema migrations (with the platform's secrets), topics and the demo events, on a database and broker
    that already exist: what `up` does for the embedded ones and `boxoffice init` for external ones. Idempotent."""
    import asyncpg
    from aiokafka.errors import KafkaError
    from sqlalchemy.exc import SQLAlchemyError

    from boxoffice.adapters.catalog_store import create_event
    from boxoffice.adapters.kafka import ensure_topics
    from boxoffice.adapters.postgres import create_pool, migrate
    from boxoffice.demo import demo_events

    unreachable = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, SQLAlchemyError)
    # The Kafka client logs every failed connection of every try; the retries' own line says it once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    # The pool waits (bounded) for a database that is still starting; the migration then finds it up.
    try:
        pool = await create_pool(database_url, size=2, attempts=30)  # about 40 s, then it says why
        await asyncio.to_thread(migrate, database_url)
    except unreachable as exc:
        raise PlatformError(f"the database at {_where(database_url)} could not be prepared: {_reason(exc)}") from None
    try:
        try:
            await ensure_topics(kafka_bootstrap, partitions, security=kafka_security)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise PlatformError(
                f"the Kafka brokers at {kafka_bootstrap} could not be reached: {_reason(exc)}") from None
        if demo:
            async with pool.acquire() as con:
                for spec in demo_events():
                    await create_event(con, spec)
    finally:
        await pool.close()


def _where(database_url: str) -> str:
    """Host, port and database of a PostgreSQL URL, never its password."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(database_url)
    host = parts.hostname or parse_qs(parts.query).get("host", ["localhost"])[0]
    return f"{host}:{parts.port or 5432}{parts.path or ''}"


def _reason(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def _started_by(supervisor: Supervisor) -> Callable[[], list[int]]:
    """The processes this platform's supervisor started, as they are when asked."""
    from boxoffice.adapters.listeners import children_of

    supervisor_pid = supervisor.pid()
    return lambda: children_of(supervisor_pid) if supervisor_pid is not None else []


_ANOTHER_PORT = "stop that process, or give the platform another port with {setting}"


def _refuse_a_taken_port(port: int, supervisor: Supervisor, server: str = "the gateway",
                         advice: str = _ANOTHER_PORT.format(setting="BOXOFFICE_HTTP_PORT")) -> None:
    """Another process listening on one of the platform's ports (the gateway's would take the buyers' requests,
    and /health's answer would be its own): said at once rather than taken for a healthy platform."""
    from boxoffice.adapters.listeners import taken_by_another

    squatter = taken_by_another(port, _started_by(supervisor))
    if squatter is not None:
        raise PlatformError(f"port {port} is held by {squatter}, not by {server}, which cannot serve: {advice}")


def _wait_held_by_ours(port: int, server: str, supervisor: Supervisor,
                       advice: str = "run `up` again (it picks other ports)", timeout: float = 30.0) -> None:
    """Until a process of this platform listens on `port`: one of another user that bound it first (the ports are
    on the command lines every user can read) would get the buyers' requests, the services' messages or the
    mailbox's tickets."""
    from boxoffice.adapters.listeners import held_by, listening_sockets, see_listeners

    if not see_listeners():  # no /proc to tell whose it is: that something listens
        wait_for_port(port, timeout)
        return
    ours = _started_by(supervisor)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _refuse_a_taken_port(port, supervisor, server, advice)
        inodes = listening_sockets(port)
        if inodes and held_by(inodes, ours()):
            return
        time.sleep(0.05)
    raise PlatformError(f"{server} does not listen on port {port} after {timeout:.0f} s; its log is in "
                        f"{supervisor.data_dir / 'logs'}")


def _wait_serving(settings: Settings, supervisor: Supervisor) -> None:
    """Until the gateway's own process listens on its port: the one the running platform was started with, which
    the environment of this command may not name."""
    runtime = read_runtime(settings)
    _wait_held_by_ours(runtime.http_port if runtime else settings.http_port, "the gateway", supervisor,
                       _ANOTHER_PORT.format(setting="BOXOFFICE_HTTP_PORT"))


def wait_healthy(settings: Settings, runtime: Runtime, timeout: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last = "no answer"
    # As many processes per service as the running configuration has (an `up` of a running platform keeps it).
    programs = [name for name, _, _ in Supervisor(settings.data_path).status()]
    processes = {service: sum(1 for name in programs if name == service or _is_instance_of(name, service)) or 1
                 for service in ("booking", "realtime")}
    supervisor = Supervisor(settings.data_path)
    while time.monotonic() < deadline:
        _refuse_a_taken_port(runtime.http_port, supervisor)
        if runtime.realtime_port:
            _refuse_a_taken_port(runtime.realtime_port, supervisor, "the realtime service",
                                 _ANOTHER_PORT.format(setting="BOXOFFICE_REALTIME_PORT"))
        try:
            health = httpx.get(f"{runtime.base_url}/health", timeout=2).json()
            down = [n for n, s in health["services"].items() if s["status"] != "up"]
            for service, count in processes.items():
                beating = health["services"].get(service, {}).get("instances", 1)
                if not down and beating < count:
                    down = [f"{service} ({beating} of {count} processes)"]
            if not down and health["database"] == "up":
                return
            last = "waiting for " + ", ".join(down)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = str(exc) or type(exc).__name__
        time.sleep(0.3)
    raise PlatformError(f"the platform did not become healthy in {timeout:.0f} s ({last}); "
                        f"logs are in {settings.data_path / 'logs'}")


def refuse_a_foreign_data_dir(data: Path) -> None:
    """A data directory that another user made or may write to (a shared path such as /tmp/x) could hold their
    password files, mailbox key or sockets, which `up` would trust: refused, with the reason."""
    import pwd

    facts = data.stat()
    if facts.st_uid != os.geteuid():
        try:
            owner = pwd.getpwuid(facts.st_uid).pw_name
        except KeyError:
            owner = f"uid {facts.st_uid}"
        raise PlatformError(f"{data} belongs to {owner}, not to this user: its files could be theirs. Use a data "
                            "directory of your own (BOXOFFICE_DATA_DIR)")
    # Writable by its group only counts when the group is not the user's own (umask 002 and one group per user).
    if facts.st_mode & 0o002 or (facts.st_mode & 0o020 and facts.st_gid != os.getegid()):
        raise PlatformError(f"{data} may be written by other users (mode {stat.filemode(facts.st_mode)}): they could "
                            f"put their own password files in it. Make it yours alone (chmod go-w {data}) or use "
                            "another (BOXOFFICE_DATA_DIR)")


def up(settings: Settings, stopping: Callable[[], None] | None = None) -> Runtime:
    """Starts everything under supervisord and returns once every service is healthy. Interrupted, it stops what
    had started (telling `stopping` first: that takes some seconds)."""
    data = settings.data_path
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    refuse_a_foreign_data_dir(data)
    supervisor = Supervisor(data)
    if supervisor.pid() is not None:
        runtime = read_runtime(settings)
        if runtime is not None:
            supervisor.ctl("start", f"{SERVICE_GROUP}:*")
            wait_healthy(settings, runtime)
            return runtime
        supervisor.shutdown()
    if not _port_is_free(settings.http_port):
        raise PlatformError(f"port {settings.http_port} is in use: set BOXOFFICE_HTTP_PORT to a free port")

    postgres = None
    if settings.embedded_database:
        postgres = EmbeddedPostgres(data, free_port())
        postgres.stop_leftover()
        postgres.init()
    broker_port = free_port() if settings.embedded_kafka else None
    mailbox = None if settings.smtp_url else mailbox_program(settings, data)
    runtime = Runtime(
        kafka_bootstrap=settings.kafka_bootstrap or f"127.0.0.1:{broker_port}",
        database_url=settings.database_url or (postgres.dsn if postgres else ""),
        http_port=settings.http_port, embedded_kafka=broker_port is not None,
        embedded_database=postgres is not None,
        smtp_url=settings.smtp_url or (mailbox.smtp_url if mailbox else ""),
        mailbox_url=mailbox.web_url.rstrip("/") if mailbox else None,
        realtime_port=settings.realtime_port or free_port(),
    )
    written = runtime_file(settings)
    written.touch(mode=0o600)
    written.chmod(0o600)
    written.write_text(json.dumps(asdict(runtime), indent=2))
    supervisor.write_config(*_programs(settings, runtime, postgres, broker_port, mailbox))
    try:
        supervisor.start()
        if postgres is not None:
            postgres.wait_until_listening()
        if broker_port is not None:
            _wait_held_by_ours(broker_port, "the broker", supervisor)
        if mailbox is not None:
            _wait_held_by_ours(mailbox.smtp_port, "the mailbox", supervisor)
            _wait_held_by_ours(mailbox.http_port, "the mailbox", supervisor)
        asyncio.run(prepare(runtime, settings, postgres))
        supervisor.ctl("start", f"{SERVICE_GROUP}:*", check=True)
        wait_healthy(settings, runtime)
    except BaseException:
        if stopping is not None:
            stopping()
        supervisor.shutdown(starting=True)
        raise
    return runtime


def down(settings: Settings) -> bool:
    supervisor = Supervisor(settings.data_path)
    if supervisor.pid() is None:
        return False
    supervisor.shutdown()
    return True


def supervisor_pid(settings: Settings) -> int | None:
    """The pid of the supervisor of the platform running under this data directory, if one runs."""
    return Supervisor(settings.data_path).pid()


def is_running(settings: Settings) -> bool:
    """Whether a platform started by `up` runs under this data directory."""
    return supervisor_pid(settings) is not None and read_runtime(settings) is not None


def require_running(settings: Settings) -> Supervisor:
    supervisor = Supervisor(settings.data_path)
    if supervisor.pid() is None:
        raise PlatformError(f"the platform is not running (no supervisor under {settings.data_path}); "
                            "start it with `boxoffice up`")
    return supervisor


def _is_instance_of(program: str, service: str) -> bool:
    """`booking-2` is the second process of the booking service."""
    base, _, number = program.rpartition("-")
    return base == service and number.isdigit()


def _refuse_taken_ports(settings: Settings, supervisor: Supervisor, programs: list[str]) -> None:
    """Another process on the port of a server about to start would get the buyers' requests (the gateway's)
    or the live streams the gateway relays (realtime's): named rather than started into a spawn error."""
    runtime = read_runtime(settings)
    if runtime is None:
        return
    if "gateway" in programs:
        _refuse_a_taken_port(runtime.http_port, supervisor)
    if runtime.realtime_port and any(name == "realtime" or _is_instance_of(name, "realtime") for name in programs):
        _refuse_a_taken_port(runtime.realtime_port, supervisor, "the realtime service",
                             _ANOTHER_PORT.format(setting="BOXOFFICE_REALTIME_PORT"))


def control(settings: Settings, action: str, service: str) -> str:
    """Stops or starts a service (every process of it), or one process of it by program name (`booking-2`)."""
    if service not in SERVICES and not any(_is_instance_of(service, s) for s in SERVICES):
        raise PlatformError(f"unknown service {service!r}; one of: {', '.join(SERVICES)} "
                            "(or one process of it, e.g. booking-2)")
    supervisor = require_running(settings)
    states = {name: state for name, state, _ in supervisor.status()
              if name == service or _is_instance_of(name, service)}
    if not states:
        raise PlatformError(f"no program {service!r} runs under the supervisor")
    # Of a service's processes, only those not already stopped (started) are addressed; one that keeps failing
    # to start (BACKOFF) is started afresh.
    settled = ("STOPPED", "EXITED", "FATAL") if action == "stop" else ("RUNNING", "STARTING")
    programs = [name for name, state in states.items() if state not in settled]
    if not programs:
        if action == "start" and "gateway" in states:
            _wait_serving(settings, supervisor)  # one the supervisor is still starting serves first
        return f"{service} is already {'stopped' if action == 'stop' else 'running'}"
    if action == "start":
        _refuse_taken_ports(settings, supervisor, programs)
        failing = [name for name in programs if states[name] == "BACKOFF"]
        if failing:
            supervisor.ctl("stop", *(f"{SERVICE_GROUP}:{name}" for name in failing))
    if action == "stop":
        # A process the supervisor has only just spawned can lose a stop signal before it runs Python
        # (it still has the supervisor's handlers): let it reach RUNNING first.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                name in programs and state in ("STARTING", "BACKOFF") for name, state, _ in supervisor.status()):
            time.sleep(0.1)
    result = supervisor.ctl(action, *(f"{SERVICE_GROUP}:{name}" for name in programs))
    said = (result.stdout + result.stderr).strip()
    if "ERROR" in said:
        if action == "start":
            _refuse_taken_ports(settings, supervisor, programs)  # taken meanwhile: said as such
        raise PlatformError(f"{said}\n{service} did not {action}: its log is in {settings.data_path / 'logs'}")
    if action == "start" and "gateway" in programs:
        _wait_serving(settings, supervisor)
    return said
