"""The `boxoffice` command line (CONTRACT §2)."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import typer.core
from rich.console import Console
from rich.table import Table
from rich.text import Text

from boxoffice.config import SERVICES, Settings, get_settings, settings_to_stop
from boxoffice.domain.text import one_line
from boxoffice.domain.waiting_room import MAX_ADMIT_PER_MINUTE

if TYPE_CHECKING:
    from boxoffice import platform as platform_runtime

_value_shown = typer.core.TyperOption.display_type_rich


def _no_value_for_a_flag(option: typer.core.TyperOption, ctx: Any) -> str | None:
    return None if option.is_flag else _value_shown(option, ctx)


# Typer 0.29's help shows `<bool>` beside every flag (`--help <bool>`), as if it took a value.
typer.core.TyperOption.display_type_rich = _no_value_for_a_flag  # type: ignore[method-assign, assignment]

app = typer.Typer(help="boxoffice: event-driven ticket booking over Kafka and PostgreSQL.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
# Piped or captured output gets wide tables instead of truncated 80-column ones, and sentences and commands
# are not broken into lines (a pipe or a log file has no width to fit).
console = Console() if sys.stdout.isatty() else Console(width=160, soft_wrap=True)


def invoked_as() -> str:
    """This command line as the user can type it again: `./run.sh` when run.sh started it (which says so
    in BOXOFFICE_INVOKED_AS), `boxoffice` when that is on the PATH, else its full path."""
    import os
    import shutil

    if os.environ.get("BOXOFFICE_INVOKED_AS"):
        return os.environ["BOXOFFICE_INVOKED_AS"]
    script = Path(sys.argv[0])
    if script.name == "boxoffice":
        on_path = shutil.which("boxoffice")
        return "boxoffice" if on_path and Path(on_path).resolve() == script.resolve() else str(script)
    return f"{sys.executable} -m boxoffice"


def main() -> None:
    """The console script: usage errors name the command as it was typed (`./run.sh`, `boxoffice`)."""
    app(prog_name=invoked_as())


def typed(command: str) -> str:
    """`command` (`down`, `dead-letters --replay ID`) as the user can type it again: with the data directory
    given in the environment, which is what finds the platform, and the way this command line was invoked."""
    import os
    import shlex

    data_dir = os.environ.get("BOXOFFICE_DATA_DIR")
    located = f"BOXOFFICE_DATA_DIR={shlex.quote(data_dir)} " if data_dir and data_dir != ".boxoffice" else ""
    return f"{located}{invoked_as()} {command}"


def _commands(text: str) -> str:
    """Commands named in a message (`boxoffice up`) as the user can run them."""
    return text.replace("`boxoffice ", f"`{typed('')}")


def _fail(message: str) -> None:
    # As text, never markup: a message may quote what was typed or read ("[/x]" would end a style).
    console.print(Text.assemble(("error:", "bold red"), " ", _commands(message)), soft_wrap=True)
    raise typer.Exit(1)


# What `up` says of each address it prints: a label short enough that, with the longest address after it,
# a line fits 80 columns.
WHAT_IS_THERE = {
    "gateway": "gateway, the HTTP API",
    "live monitor": "live monitor: book, pay",
    "api docs": "API docs: try every call",
    "waiting room": "on-sale waiting room",
    "health": "health of each service",
    "metrics": "metrics (Prometheus)",
    "mailbox": "mailbox: emails sent",
}


def print_started(out: Console, runtime: platform_runtime.Runtime, logs: Path, seconds: float, detach: bool,
                  accounts: bool = False, already: bool = False) -> None:
    """What `up` prints once the platform is healthy (the README shows it as it is)."""
    where = (f"({'embedded' if runtime.embedded_kafka else 'external'} Kafka at {runtime.kafka_bootstrap}, "
             f"{'embedded' if runtime.embedded_database else 'external'} PostgreSQL)")
    headline = f"{where}; it was already running" if already else f"in {seconds:.1f} s {where}"
    out.print(f"[bold green]boxoffice is up[/] {headline}", soft_wrap=True)
    rows = [(WHAT_IS_THERE.get(name, name), f"[link={url}]{url}[/link]") for name, url in runtime.urls().items()]
    rows.append(("logs", str(logs)))
    width = max(len(label) for label, _ in rows) + 2
    for label, where in rows:
        # Plain lines, not a table: an address is never cut or wrapped, so it can be copied.
        out.print(f"  {label.ljust(width)}{where}", soft_wrap=True, highlight=False)
    if accounts:  # a hold without a bearer token is answered 401: the way to one, not a command that fails
        out.print(f"  try:  sign up and sign in at {runtime.base_url}/docs (POST /auth/register, then "
                  "POST /auth/token), then book with the token as 'Authorization: Bearer ...'",
                  soft_wrap=True, highlight=False)
    else:  # one line however narrow the terminal: it is there to be copied
        out.print(f"  try:  curl -X POST {runtime.base_url}/bookings -H 'Content-Type: application/json' "
                  "-d '{\"eventId\": \"taylor_swift_concert\", \"seatIds\": [\"B1\"], \"userId\": \"user_1\"}'",
                  soft_wrap=True, highlight=False)
    if detach:
        out.print(Text.assemble("Stop it with ", (typed("down"), "bold"), "."), soft_wrap=True, highlight=False)
    else:
        out.print("Press Ctrl-C to stop.")


@app.command()
def up(detach: Annotated[bool, typer.Option("--detach", "-d", help="Return once every service is healthy")] = False
       ) -> None:
    """Start broker, database and the seven services, with the demo events."""
    from boxoffice import platform

    settings = get_settings()
    started = time.monotonic()
    already = platform.is_running(settings)

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # A terminal closed or a kill while starting stops what was started, as Ctrl-C does: nothing comes up later.
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _interrupt)
    with console.status("Starting broker, database and services...") as starting:
        try:
            runtime = platform.up(settings, stopping=lambda: starting.update("Stopping what had started..."))
        except platform.PlatformError as exc:
            _fail(str(exc))
            return
        except KeyboardInterrupt:
            console.print("boxoffice stopped before it was up." if not already else "interrupted.")
            raise typer.Exit(130) from None
    # A platform an earlier `up` started keeps running as it was started: this one neither owns nor restarts it.
    if already:
        console.print(Text(_commands(f"It was already running under {settings.data_path} (started by an earlier "
                                     "`boxoffice up`) and keeps the settings it was started with. To change them, "
                                     "`boxoffice down` first."), style="yellow"), soft_wrap=True, highlight=False)
    print_started(console, runtime, settings.data_path / "logs", time.monotonic() - started, detach or already,
                  accounts=settings.auth_on, already=already)
    if already:
        return
    if detach:
        return
    # The platform this `up` started: a `boxoffice down` elsewhere ends it, and a later `up` is another's.
    ours = platform.supervisor_pid(settings)
    stopping = {"now": False}

    def _stop(*_: object) -> None:
        stopping["now"] = True

    # Closing the terminal ends the platform with it, like Ctrl-C and a kill.
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _stop)
    try:
        while not stopping["now"]:
            time.sleep(0.5)
            if platform.supervisor_pid(settings) != ours:
                console.print("boxoffice was stopped (by `boxoffice down`).")
                return
    except KeyboardInterrupt:
        pass
    if platform.supervisor_pid(settings) == ours:
        with console.status("Stopping..."):
            platform.down(settings)
    console.print("boxoffice stopped.")


@app.command()
def down() -> None:
    """Stop the platform that `up` started under this data directory (detached, or in another terminal)."""
    from boxoffice import platform

    settings = _settings_to_stop()
    with console.status("Stopping services, broker and database..."):
        stopped = platform.down(settings)
    # Where it looked: `boxoffice` run from another directory looks under that one's .boxoffice.
    console.print("boxoffice stopped." if stopped else
                  f"boxoffice was not running under {settings.data_path.resolve()} (for one started from another "
                  "directory, set BOXOFFICE_DATA_DIR to its data directory).", soft_wrap=True)


@app.command()
def status() -> None:
    """One line per service: state, pid, uptime, consumer lag, last heartbeat (up, degraded or down)."""
    from boxoffice import platform

    settings = get_settings()
    try:
        supervisor = platform.require_running(settings)
    except platform.PlatformError as exc:
        _fail(str(exc))
        return
    heartbeats, by_pid, unreadable = _heartbeats(settings)
    table = Table("service", "state", "pid / uptime", "lag", "last heartbeat")
    programs = supervisor.status()
    pids = {name: int(d.split()[1].rstrip(",")) for name, _, d in programs if d.startswith("pid ")}
    for name, state, description in programs:
        # Each process shows its own heartbeat (booking may run as booking, booking-2, ...); a stopped one
        # its service's last, unless that is another running process's.
        beat = by_pid.get(pids[name], {}) if name in pids else heartbeats.get(name, {})
        if name not in pids and beat.get("pid") in pids.values():
            beat = {}
        colour = "green" if state == "RUNNING" else "red"
        lag = beat.get("lag")
        table.add_row(name, f"[{colour}]{state}[/]", _stopped_at(description), "" if lag is None else str(lag),
                      _last_heartbeat(beat, running=name in pids))
    console.print(table)
    if unreadable:
        console.print(f"[yellow]heartbeats not shown: {unreadable}[/]", highlight=False)


def _stopped_at(description: str) -> str:
    """The supervisor tells when a program stopped on a 12-hour clock ("Dec 07 07:15 PM"): the 24-hour one of
    every other time the platform prints."""
    import datetime

    try:
        when = datetime.datetime.strptime(description, "%b %d %I:%M %p")
    except ValueError:
        return description
    return f"stopped {when:%b %d %H:%M}"


def _last_heartbeat(beat: dict[str, object], running: bool = True) -> str:
    from boxoffice.adapters.heartbeat import retrying_for

    age = beat.get("lastHeartbeatSecondsAgo")
    if not isinstance(age, int | float):
        return ""
    if not running:  # its last beat is still fresh for a few seconds after a stop: not "up"
        return f"{age:.1f} s ago (before it stopped)"
    shown = f"{age:.1f} s ago ({beat.get('status')}"
    if beat.get("status") == "degraded":
        error = str(beat.get("lastError") or "")
        shown += f": retrying for {retrying_for(beat):.0f} s" + (f", {error[:80]}" if error else "")
    return shown + ")"


Beats = dict[str, dict[str, object]]
HEARTBEAT_READ_SECONDS = 5.0


def _heartbeats(settings: object) -> tuple[Beats, dict[int, dict[str, object]], str | None]:
    """The freshest heartbeat per service, each process's own by pid, and why they could not be read."""
    import asyncio

    import asyncpg

    from boxoffice import platform
    from boxoffice.adapters.heartbeat import beat_status, read_heartbeats, read_instances

    runtime = platform.read_runtime(settings)  # type: ignore[arg-type]
    if runtime is None:
        return {}, {}, None
    stale = settings.heartbeat_stale_seconds  # type: ignore[attr-defined]

    async def fetch() -> tuple[Beats, dict[int, dict[str, object]]]:
        con = await asyncpg.connect(runtime.database_url, timeout=HEARTBEAT_READ_SECONDS)
        try:
            by_pid = {int(i["instance"].rpartition(":")[2]): {
                **i["info"], "lastHeartbeatSecondsAgo": round(max(i["age"], 0.0), 3),
                "status": beat_status(i["age"], stale, i["info"])} for i in await read_instances(con)
                if i["instance"].rpartition(":")[2].isdigit()}
            return await read_heartbeats(con, stale), by_pid
        finally:
            await con.close()

    try:
        beats, by_pid = asyncio.run(asyncio.wait_for(fetch(), HEARTBEAT_READ_SECONDS))
    except Exception as exc:  # noqa: BLE001 - status still shows the supervisor's view
        return {}, {}, f"the database is not reachable ({exc!r})"
    return beats, by_pid, None


def _settings_to_stop() -> Settings:
    """Stopping needs only the data directory: other settings that are invalid are said, not a refusal."""
    settings, problems = settings_to_stop()
    if problems:
        print(problems + "\n  (stopping anyway: stopping needs only BOXOFFICE_DATA_DIR)", file=sys.stderr)
    return settings


def _control(action: str, service: str) -> None:
    from boxoffice import platform

    settings = _settings_to_stop() if action == "stop" else get_settings()
    try:
        console.print(platform.control(settings, action, service))
    except platform.PlatformError as exc:
        _fail(str(exc))


@app.command()
def stop(service: Annotated[str, typer.Argument(help=" | ".join(SERVICES) + " | one process, e.g. booking-2")]
         ) -> None:
    """Stop one service (all its processes) or one process of it; everything else keeps running."""
    _control("stop", service)


@app.command()
def start(service: Annotated[str, typer.Argument(help=" | ".join(SERVICES) + " | one process, e.g. booking-2")]
          ) -> None:
    """Start one stopped service (all its processes) or one process of it."""
    _control("start", service)


@app.command()
def service(name: Annotated[str, typer.Argument(help=" | ".join(SERVICES))]) -> None:
    """Run one service in this process (what the supervisor starts)."""
    if name not in SERVICES:
        _fail(f"unknown service {name!r}; one of: {', '.join(SERVICES)}")
    settings = get_settings()
    if not settings.kafka_bootstrap or not settings.database_url:
        _fail("BOXOFFICE_KAFKA_BOOTSTRAP and BOXOFFICE_DATABASE_URL must be set (`boxoffice up` sets them)")
    from boxoffice.entrypoints.service import run

    run(name)


@app.command()
def init(demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Create the demo events too")] = True) -> None:
    """Prepare an external database and broker: schema migrations, topics, the demo events.

    Needs BOXOFFICE_DATABASE_URL and BOXOFFICE_KAFKA_BOOTSTRAP; idempotent, so it can run at every deployment
    (`up` does the same for the embedded servers itself)."""
    import asyncio

    from boxoffice import platform

    settings = get_settings()
    if not settings.database_url or not settings.kafka_bootstrap:
        _fail("BOXOFFICE_DATABASE_URL and BOXOFFICE_KAFKA_BOOTSTRAP must be set "
              "(`boxoffice up` prepares its embedded database and broker itself)")
        return
    started = time.monotonic()
    from boxoffice.adapters.kafka import client_security

    try:
        asyncio.run(platform.initialise(settings.database_url, settings.kafka_bootstrap, settings.partitions,
                                        demo=demo, kafka_security=client_security(settings)))
    except platform.PlatformError as exc:
        _fail(str(exc))
        return
    console.print(f"boxoffice initialised in {time.monotonic() - started:.1f} s: schema migrated, "
                  f"topics with {settings.partitions} partitions{', demo events' if demo else ''}")


@app.command()
def health(
    name: Annotated[str, typer.Argument(help=" | ".join(SERVICES))],
    this_host: Annotated[bool, typer.Option(
        "--this-host", help="Only count heartbeats of processes on this host (a container's own process)")] = False,
) -> None:
    """Exit 0 when the service's heartbeat in PostgreSQL is fresh, 1 otherwise (a container health check)."""
    import asyncio
    import socket

    from boxoffice import platform

    if name not in SERVICES:
        _fail(f"unknown service {name!r}; one of: {', '.join(SERVICES)}")
    settings = get_settings()
    runtime = platform.read_runtime(settings)
    if not settings.database_url and (runtime is None or not platform.is_running(settings)):
        _fail("BOXOFFICE_DATABASE_URL is not set and no platform started by `boxoffice up` is running "
              "(start it with `boxoffice up`)")
        return
    database_url = settings.database_url or (runtime.database_url if runtime else "")

    async def ages() -> tuple[float | None, float | None]:
        import asyncpg

        from boxoffice.adapters.heartbeat import heartbeat_age, stopped_since

        con = await asyncpg.connect(database_url, timeout=5)
        host = socket.gethostname() if this_host else None
        try:
            return await heartbeat_age(con, name, host), await stopped_since(con, name, host)
        finally:
            await con.close()

    try:
        seconds, stopped = asyncio.run(ages())
    except Exception as exc:  # noqa: BLE001 - any failure to read the heartbeat means "not healthy"
        _fail(f"{name}: heartbeat not readable: PostgreSQL did not answer ({type(exc).__name__}: {exc})")
        return
    if seconds is None:
        _fail(f"{name}: down, stopped {stopped:.1f} s ago" if stopped is not None else f"{name}: no heartbeat yet")
    elif seconds > settings.heartbeat_stale_seconds:
        _fail(f"{name}: down, last heartbeat {seconds:.1f} s ago")
    console.print(f"{name}: up, last heartbeat {seconds:.1f} s ago")


@app.command("dead-letters")
def dead_letters(
    topic: Annotated[str | None, typer.Argument(help="only this topic's dead letters, e.g. seat.reservation.requested")]
    = None,
    replay: Annotated[str | None, typer.Option("--replay", metavar="ID", help="put this dead letter back on its topic")]
    = None,
) -> None:
    """List the messages consumers could not handle (kept in <topic>.dead), or replay one."""

    from boxoffice.adapters import dead_letters as letters
    from boxoffice.messages import ALL_TOPICS, DEAD_LETTER_SUFFIX

    bootstrap = _kafka_bootstrap()
    topics = None
    if topic is not None:
        topic = topic.removesuffix(DEAD_LETTER_SUFFIX)
        if topic not in ALL_TOPICS:
            _fail(f"unknown topic {topic!r}; one of: {', '.join(ALL_TOPICS)}")
        topics = [topic]
    security = _kafka_security()
    found = _with_kafka(letters.read_dead_letters(bootstrap, topics, security=security), bootstrap)
    if replay is not None:
        chosen = [letter for letter in found if letter.id == replay]
        if not chosen:
            _fail(f"no dead letter {replay!r}; `boxoffice dead-letters` lists them")
        try:
            _with_kafka(letters.replay(bootstrap, chosen[0], security=security), bootstrap)
        except letters.CutDeadLetter as exc:
            _fail(str(exc))
        console.print(Text(f"dead letter {one_line(replay)} is back on {chosen[0].topic}; it stays listed here as a "
                           "record"))
        return
    if not found:
        console.print("no dead letters" + (f" for {topic}" if topic else ""))
        return
    table = Table("topic", "partition:offset", "consumer", "dead at", "error")
    table.add_column("id", no_wrap=True, min_width=36)  # whole: it is what --replay takes
    for letter in found:
        error = f"{letter.error} (kept cut: {letter.original_bytes} bytes)" if letter.cut else letter.error
        # What a record says is shown as plain text on one line: it may quote the message (or be forged) with
        # markup, escape sequences or line breaks in it.
        table.add_row(*(Text(one_line(field)) for field in (
            letter.topic, f"{letter.partition}:{letter.offset}", letter.consumer, letter.dead_at, error, letter.id)))
    console.print(table)
    console.print(Text(f"Put one back on its topic with: {typed('dead-letters --replay ID')}"), soft_wrap=True)


def _kafka_security() -> dict[str, Any]:
    """The configured Kafka credentials; none for the embedded broker of a running platform."""
    from boxoffice.adapters.kafka import client_security

    settings = get_settings()
    return client_security(settings) if settings.kafka_bootstrap else {}


def _kafka_bootstrap() -> str:
    """The configured broker, or the one the running platform's `up` started."""
    from boxoffice import platform

    settings = get_settings()
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    runtime = platform.read_runtime(settings)
    if runtime is None or not platform.is_running(settings):
        _fail("the platform is not running (start it with `boxoffice up`), and BOXOFFICE_KAFKA_BOOTSTRAP is unset")
    assert runtime is not None
    return runtime.kafka_bootstrap


T = TypeVar("T")


def _with_kafka(work: Coroutine[Any, Any, T], bootstrap: str) -> T:
    """Runs `work`; a broker that cannot be reached is one sentence, not a traceback."""
    import asyncio
    import logging

    from aiokafka.errors import KafkaConnectionError

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # each failed connection; the sentence below says it
    try:
        return asyncio.run(work)
    except KafkaConnectionError:
        _fail(f"cannot reach Kafka at {bootstrap}: is the platform up (`boxoffice status`)?")
        raise  # not reached: _fail exits


@app.command()
def demo() -> None:
    """Run the five demo scenarios against the running platform."""
    from boxoffice import platform
    from boxoffice.demo_run import Demo

    settings = get_settings()
    runtime = platform.read_runtime(settings)
    try:
        platform.require_running(settings)
    except platform.PlatformError as exc:
        _fail(str(exc))
        return
    assert runtime is not None
    import httpx

    try:
        Demo(runtime.base_url, console, lambda action, name: platform.control(settings, action, name),
             runtime.mailbox_url).run()
    except httpx.TransportError as exc:
        _fail(f"the gateway at {runtime.base_url} does not answer ({type(exc).__name__}); "
              "`boxoffice status` shows which service is stopped, `boxoffice start gateway` starts it")
    except RuntimeError as exc:  # what a scenario could not do (a sold-out demo event, a decision that never came)
        _fail(str(exc))


bench_app = typer.Typer(help="Benchmarks: each prints its settings and figures. Alone, `bench` runs the hold "
                                "crowd against raw PostgreSQL, then live connections.")
app.add_typer(bench_app, name="bench")

# What `boxoffice bench` alone measures (CONTRACT §7): the flash crowd's holds against raw PostgreSQL, then
# commit-to-browser latency with this many open connections.
BENCH_LIVE_CONNECTIONS = [100, 1000]


@bench_app.callback(invoke_without_command=True)
def _bench_setup(context: typer.Context) -> None:
    import gc

    # The load generator shares the cores with the platform: keep its garbage collection from skewing figures.
    gc.set_threshold(50_000, 20, 100)
    if context.invoked_subcommand is not None:
        return
    console.print(Text(_commands(
        "bench: the flash crowd of `boxoffice bench holds`, then `boxoffice bench live --connections "
        f"{','.join(map(str, BENCH_LIVE_CONNECTIONS))} --seconds 6`; every bench and its settings: "
        "`boxoffice bench --help`")), soft_wrap=True)
    bench_holds()
    from boxoffice.bench import live

    live.run(BENCH_LIVE_CONNECTIONS, 50.0, 6.0, False, console)


@bench_app.command("holds")
def bench_holds(
    requests: Annotated[int | None, typer.Option(
        help="reservation requests in the crowd (20,000; with --best-available, enough to ask for 1.2× "
             "the seats on sale)", show_default=False, min=1)] = None,
    clients: Annotated[int, typer.Option(help="concurrent HTTP clients", min=1)] = 500,
    seats: Annotated[int, typer.Option(help="seats on sale", min=10)] = 2_000,
    max_seats: Annotated[int | None, typer.Option(
        help="most seats in one request (3; with --best-available, 4)", show_default=False, min=1, max=10)] = None,
    seed: Annotated[int, typer.Option(help="random seed of the crowd")] = 1,
    best_available: Annotated[bool, typer.Option(
        "--best-available", help="the same wishes to sell-out as pick-a-seat and as best-available requests, "
                                 "on two events of this size, side by side")] = False,
    category: Annotated[str | None, typer.Option(
        help="with --best-available: the category every request asks for (a: front half, b: back half)")] = None,
) -> None:
    """A flash crowd on one event: decisions/s and latency end to end, against raw PostgreSQL. With
    --best-available: pick-a-seat against best available, each to sell-out."""
    from boxoffice.bench import holds

    if not best_available:
        if category is not None:
            raise typer.BadParameter("only with --best-available", param_hint="--category")
        holds.run(20_000 if requests is None else requests, clients, seats, 3 if max_seats is None else max_seats,
                  seed, console)
        return
    from boxoffice.bench import best_available as best

    if category is not None and category not in best.categories():
        raise typer.BadParameter(f"one of {', '.join(best.categories())}", param_hint="--category")
    if not best.run(requests, clients, seats, 4 if max_seats is None else max_seats, category, seed, console):
        raise typer.Exit(1)


@bench_app.command("queue")
def bench_queue(
    visitors: Annotated[int, typer.Option(help="visitors who join the waiting room", min=1)] = 100_000,
    early: Annotated[float, typer.Option(help="share of them who join before the opening", min=0.0, max=1.0)] = 0.9,
    clients: Annotated[int, typer.Option(help="concurrent HTTP clients", min=1)] = 200,
    admit_per_minute: Annotated[int, typer.Option(help="admissions a minute", min=1,
                                                  max=MAX_ADMIT_PER_MINUTE)] = 6_000,
    window: Annotated[float, typer.Option(help="seconds over which the admission rate is measured", min=1.0)] = 30.0,
    watchers: Annotated[int, typer.Option(help="visitors following their place live (SSE)", min=0)] = 200,
) -> None:
    """A crowd joins one waiting room: joins/s, the draw's fairness, admission rate, admission → live status."""
    from boxoffice.bench import queue

    queue.run(visitors, early, clients, admit_per_minute, window, watchers, console)


@app.command(hidden=True)
def mailbox(
    smtp_port: Annotated[int, typer.Option(help="SMTP port to accept mail on (127.0.0.1)")] = 1025,
    http_port: Annotated[int, typer.Option(help="port of the mailbox web page and JSON API")] = 8025,
    directory: Annotated[str, typer.Option("--dir", help="where messages are kept, one .eml file each")] = "",
    http_host: Annotated[str, typer.Option(help="address the web page listens on")] = "127.0.0.1",
    key_file: Annotated[str, typer.Option(help="file with the key that the web page's address starts with, "
                                                 "made if missing (unset: a new key, logged)")] = "",
) -> None:
    """The embedded SMTP mailbox and its web page (what the supervisor starts when no SMTP URL is set)."""
    from pathlib import Path

    from boxoffice.entrypoints.mailbox import run
    from boxoffice.entrypoints.service import lower_priority

    settings = get_settings()
    lower_priority(settings.notification_nice)  # it stands in for the mail server: as notification's
    from boxoffice.adapters.mailbox import key_in

    key = key_in(Path(key_file)) if key_file else None
    run(Path(directory) if directory else settings.data_path / "mailbox", smtp_port, http_port, http_host, key,
        settings.log_format)


@bench_app.command("lifecycle")
def bench_lifecycle(
    holds: Annotated[int, typer.Option(help="holds left to expire", min=0)] = 10_000,
    hold_seconds: Annotated[float, typer.Option(help="hold time T", min=1.0)] = 30.0,
    confirms: Annotated[int, typer.Option(help="holds confirmed through the payment service", min=1)] = 1_000,
    clients: Annotated[int, typer.Option(help="concurrent HTTP clients", min=1)] = 200,
) -> None:
    """Holds expiring together (lateness p50/p99/max) and confirmations per second end to end."""
    from boxoffice.bench import lifecycle

    lifecycle.run(holds, hold_seconds, confirms, clients, console)


@bench_app.command("live")
def bench_live(
    connections: Annotated[
        str, typer.Option(help="comma-separated connection counts, one round each")] = "100,1000,5000",
    rate: Annotated[float, typer.Option(help="bookings per second during a round", min=1.0)] = 50.0,
    seconds: Annotated[float, typer.Option(help="length of the booking crowd in each round", min=1.0)] = 10.0,
    direct: Annotated[bool, typer.Option(help="connect to the realtime service's own port, not the gateway")] = False,
) -> None:
    """Open live connections while a crowd books: commit-to-client latency, messages/s, memory per connection."""
    from boxoffice.bench import live

    counts = [c.strip() for c in connections.split(",")]
    if not all(c.isdigit() and int(c) >= 1 for c in counts):
        raise typer.BadParameter("whole numbers of at least 1, separated by commas", param_hint="--connections")
    live.run([int(c) for c in counts], rate, seconds, direct, console)


@bench_app.command("chaos")
def bench_chaos(
    seconds: Annotated[float, typer.Option(help="how long the crowd runs while faults are injected", min=1.0)] = 180.0,
    seed: Annotated[int | None, typer.Option(help="random seed; printed, so that a run can be replayed")] = None,
    faults: Annotated[str, typer.Option(
        help="comma-separated faults to inject: kill (SIGKILL services), freeze (SIGSTOP a service 2–6 s), "
             "db-restart (the embedded PostgreSQL), broker-restart (the embedded broker, which comes back empty), "
             "poison (bad messages on the request topics)")] = "kill",
    waiting_room: Annotated[bool, typer.Option(
        "--waiting-room", help="instead: visitors join an event's waiting room and the admitted hold, while the "
                               "waitingroom service and the gateway are SIGKILLed; then no place lost or given "
                               "twice, admissions in order and at the rate, the serving position moving on")] = False,
) -> None:
    """Inject faults at random moments during a mixed crowd, then check nothing was lost or sold twice."""
    from boxoffice.bench import chaos

    if waiting_room:
        from boxoffice.bench import queue_chaos

        try:
            ok = queue_chaos.run(seconds, seed, console)
        except chaos.ChaosError as exc:
            _fail(str(exc))
            return
        if not ok:
            raise typer.Exit(1)
        return

    try:
        kinds = chaos.parse_faults(faults)
    except chaos.ChaosError as exc:
        raise typer.BadParameter(str(exc), param_hint="--faults") from exc
    try:
        ok = chaos.run(seconds, seed, console, kinds)
    except chaos.ChaosError as exc:
        _fail(str(exc))
        return
    if not ok:
        raise typer.Exit(1)
