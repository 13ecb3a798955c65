"""What an attacker on the network or the machine meets at the platform's edge: a made-up X-Forwarded-For
does not dodge the per-address limit, an oversized head is refused before it is held in memory, and the
files carrying the platform's secrets are its owner's alone; the services' database role can do nothing beyond
their own schema."""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from tests.e2e.api_client import book, seat_statuses, wait_for
from tests.e2e.test_tickets import emailed_tickets, paid_booking
from tests.platforms import RunningPlatform, start_platform

EVENT = "taylor_swift_concert"


@pytest.fixture(scope="module")
def edge_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """The open demo with per-address limits on and a small burst."""
    yield from start_platform(tmp_path_factory.mktemp("edge"), BOXOFFICE_RATE_LIMITS="on",
                              BOXOFFICE_RATE_LIMIT_IP_BURST="5", BOXOFFICE_RATE_LIMIT_IP_PER_MINUTE="30",
                              BOXOFFICE_RATE_LIMIT_USER_BURST="100")


@pytest.fixture
async def client(edge_platform: RunningPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge_platform.base_url, timeout=30) as c:
        yield c


async def test_a_forwarded_for_header_does_not_make_a_new_address(client: httpx.AsyncClient) -> None:
    bogus = {"eventId": EVENT, "seatIds": ["NOPE1"]}  # 404s: counted, nothing held
    statuses = [(await client.post("/bookings", json={**bogus, "userId": f"spoofer_{i}"},
                                   headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code for i in range(8)]
    assert statuses[:5] == [404] * 5 and statuses[5:] == [429] * 3, statuses


def _gateway_rss_kib(platform: RunningPlatform) -> int:
    status = Path(f"/proc/{platform.pid('gateway')}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


async def _send_head(base_url: str, header_bytes: int) -> bytes:
    """A request whose one header is this long, sent in 1 MiB pieces; what the gateway answers. The answer is
    read as it comes, while the head is still being sent: the gateway answers, drops what still comes for a
    moment, then cuts the connection, and on a loaded machine the sending outlasts that moment; a write that
    then fails would make asyncio's reader raise instead of giving back the answer it already holds."""
    address = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    answer = bytearray()

    async def read_answer() -> None:
        try:
            while chunk := await reader.read(1 << 16):
                answer.extend(chunk)
        except ConnectionError:
            pass  # cut off after its answer

    reading = asyncio.create_task(read_answer())
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: boxoffice\r\nX-Padding: ")
        piece = b"a" * (1 << 20)
        sent = 0
        try:
            while sent < header_bytes:
                writer.write(piece)
                await writer.drain()
                sent += len(piece)
            writer.write(b"\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            pass  # the gateway answered and closed while the head was still coming
        await asyncio.wait_for(reading, 10)
        return bytes(answer)
    finally:
        reading.cancel()
        writer.close()


async def test_an_oversized_head_gets_431_and_is_not_kept(client: httpx.AsyncClient,
                                                          edge_platform: RunningPlatform) -> None:
    before = _gateway_rss_kib(edge_platform)
    answers = await asyncio.gather(*(_send_head(edge_platform.base_url, 100 << 20) for _ in range(3)))
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b'"code":"headers_too_large"' in answer
    grown_mib = (_gateway_rss_kib(edge_platform) - before) / 1024
    assert grown_mib < 50, f"the gateway grew by {grown_mib:.0f} MiB for three 100 MiB heads"
    # A head within the limit is served as before, and the gateway is still there.
    assert (await client.get("/health", headers={"X-Padding": "a" * 30_000})).status_code == 200


def test_the_files_with_the_platforms_secrets_are_the_owners_alone(edge_platform: RunningPlatform) -> None:
    for name in ("supervisord.conf", "runtime.json", "logs", "logs/gateway.log", "logs/supervisord.log", "mailbox.key"):
        mode = stat.S_IMODE((edge_platform.data_dir / name).stat().st_mode)
        assert mode & 0o077 == 0, f"{name} is {oct(mode)}"


async def test_the_embedded_mailbox_shows_the_mail_only_under_its_key(platform: RunningPlatform) -> None:
    """Its port is open to every user of the machine, and the mail holds tickets."""
    key = (platform.data_dir / "mailbox.key").read_text().strip()
    mailbox_url = str(platform.runtime["mailbox_url"])
    assert len(key) >= 22 and mailbox_url.endswith(f"/{key}")
    assert stat.S_IMODE((platform.data_dir / "mailbox.key").stat().st_mode) == 0o600
    # Not on the mailbox's command line, which every local user can read (ps).
    assert not any(key in arg for arg in psutil.Process(platform.pid("mailbox")).cmdline())
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as client:
        _, booking_id = await paid_booking(client, 1)
        assert await emailed_tickets(client, platform, booking_id)  # read under the key
        origin = mailbox_url.removesuffix(f"/{key}")
        for path in ("/", "/messages", "/messages?limit=1000", f"/{key[:-1]}/messages", f"/x{key}/messages"):
            answer = await client.get(f"{origin}{path}")
            assert answer.status_code == 404 and booking_id not in answer.text, path


async def test_the_embedded_database_refuses_a_local_user_without_the_password(
        edge_platform: RunningPlatform) -> None:
    from urllib.parse import parse_qs

    import asyncpg

    where = parse_qs(urlsplit(str(edge_platform.runtime["database_url"])).query)
    socket_dir, port = where["host"][0], int(where["port"][0])
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(host=socket_dir, port=port, user="postgres", database="boxoffice")
    for secret in ("postgres.password", "boxoffice.password"):
        assert stat.S_IMODE((edge_platform.data_dir / secret).stat().st_mode) == 0o600
    # The platform's own connections carry it.
    connection = await asyncpg.connect(str(edge_platform.runtime["database_url"]))
    try:
        assert await connection.fetchval("SELECT count(*) FROM events") >= 1
    finally:
        await connection.close()


async def test_the_services_database_role_cannot_run_commands_or_make_roles(platform: RunningPlatform) -> None:
    import asyncpg

    database_url = str(platform.runtime["database_url"])
    assert urlsplit(database_url).username == "boxoffice"
    connection = await asyncpg.connect(database_url)
    try:
        for refused in ("COPY (SELECT 1) TO PROGRAM 'id'", "CREATE ROLE intruder SUPERUSER LOGIN",
                        "SELECT rolname, rolpassword FROM pg_authid"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute(refused)
    finally:
        await connection.close()
    # With that role the platform holds and sells seats as before.
    event_id = f"locked_{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as client:
        created = await client.post("/events", json={
            "eventId": event_id, "name": "Locked Hall", "venue": {"name": "Hall", "city": "Bath"},
            "startsAt": "2030-01-01T19:30:00Z", "currency": "USD",
            "priceCategories": [{"categoryId": "std", "name": "Standard", "price": 50.0}],
            "rows": [{"row": "A", "seats": 4, "section": "Stalls", "categoryId": "std"}]})
        assert created.status_code == 201, created.text
        held = await book(client, event_id, ["A1"], "locked_buyer")
        assert held.status_code == 201, held.text
        booking = held.json()
        paid = await client.put(f"/bookings/{booking['bookingId']}/confirm",
                                json={"paymentId": f"pay_{event_id}", "amount": booking["amount"],
                                      "card": "4242424242424242"})
        assert paid.status_code == 200 and paid.json()["status"] == "confirmed", paid.text
        assert (await seat_statuses(client, event_id))["A1"] == "BOOKED"


async def _made_by_an_earlier_version(data_dir: Path) -> None:
    """A data directory as earlier versions left it: the superuser's password only, and the database with
    every object in it the superuser's (the services connected as superuser)."""
    import asyncpg

    from boxoffice.adapters.embedded import EmbeddedPostgres, free_port
    from boxoffice.adapters.postgres import migrate
    from tests.integration.test_embedded_postgres_access import _connect, _start, _stop

    postgres = EmbeddedPostgres(data_dir, free_port())
    postgres.init()
    postgres.service_password_file.unlink()
    server = _start(postgres, data_dir)
    try:
        superuser = await _connect(postgres, postgres.password)
        await superuser.execute("CREATE DATABASE boxoffice")
        await superuser.close()
        dsn = postgres.dsn_as("postgres", postgres.password)
        await asyncio.to_thread(migrate, dsn)
        connection = await asyncpg.connect(dsn)
        assert await connection.fetchval("SELECT count(*) FROM pg_class WHERE relowner = 'postgres'::regrole "
                                         "AND relnamespace = 'public'::regnamespace") > 10
        await connection.close()
    finally:
        _stop(server)


async def test_up_hands_an_earlier_versions_database_to_the_services_role(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    import asyncpg

    data_dir = tmp_path_factory.mktemp("earlier")
    await _made_by_an_earlier_version(data_dir)
    with contextmanager(start_platform)(data_dir) as running:
        assert stat.S_IMODE((data_dir / "boxoffice.password").stat().st_mode) == 0o600
        connection = await asyncpg.connect(str(running.runtime["database_url"]))
        try:
            assert await connection.fetchval("SELECT current_user") == "boxoffice"
            assert await connection.fetch("SELECT relname FROM pg_class WHERE relowner <> current_user::regrole "
                                          "AND relnamespace = 'public'::regnamespace") == []
        finally:
            await connection.close()
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as client:
            held = await book(client, EVENT, ["A1"], "upgraded_buyer")
            assert held.status_code == 201, held.text
            assert (await seat_statuses(client, EVENT))["A1"] == "RESERVED"


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: boxoffice\r\n"], ids=["nothing", "half a head"])
async def test_a_client_that_never_finishes_its_headers_is_cut_off(edge_platform: RunningPlatform,
                                                                   sent: bytes) -> None:
    address = urlsplit(edge_platform.base_url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(sent)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)  # until the gateway closes the connection
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"code":"request_timeout"' in answer, answer[:200]


async def test_the_live_connection_handoff_sockets_are_the_owners_alone(edge_platform: RunningPlatform) -> None:
    """Another local user who could connect to a realtime process's handoff socket could pass it any socket."""
    handoff = edge_platform.data_dir / "handoff"

    async def sockets() -> list[Path]:
        return sorted(handoff.glob("*.sock"))

    found = await wait_for(sockets, timeout=30)
    assert found, "no realtime process made its handoff socket"
    assert stat.S_IMODE(handoff.stat().st_mode) & 0o077 == 0, oct(handoff.stat().st_mode)
    for sock in found:
        assert stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0, f"{sock.name} is {oct(sock.stat().st_mode)}"


async def _raw_answer(base_url: str, request: bytes, *,
                      stays_open: bool = False) -> tuple[bytes, dict[str, str], bytes]:
    """Sends bytes as they are; the status line, headers and body the gateway answers before it closes (for a
    connection that stays open, the head only)."""
    address = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n") if stays_open else reader.read(), 30)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status.encode(), headers, body


async def test_trailer_fields_of_a_chunked_body_are_neither_headers_nor_kept(edge_platform: RunningPlatform) -> None:
    """Found from outside: a chunked body's trailer fields were added to the request's headers (an
    `Idempotency-Key` or `X-Request-ID` sent after the body was applied; a proxy filters only the head), and a
    stream of them, past the head's 64 KiB limit, grew the gateway's memory 17 times what was sent."""
    async with httpx.AsyncClient(base_url=edge_platform.base_url, timeout=30) as client:
        free = [s for s, status in (await seat_statuses(client, EVENT)).items() if status == "AVAILABLE"]
        key = uuid.uuid4().hex
        body = json.dumps({"eventId": EVENT, "seatIds": [free[0]], "userId": "trailer_sender"}).encode()
        before = _gateway_rss_kib(edge_platform)
        status, headers, _ = await _raw_answer(edge_platform.base_url, (
            b"POST /bookings HTTP/1.1\r\nHost: boxoffice\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n" % (len(body), body)
            + b"Idempotency-Key: " + key.encode() + b"\r\nX-Request-ID: from-the-trailer\r\n"
            + b"a:b\r\n" * 1_000_000 + b"\r\n"))
        assert status.startswith(b"HTTP/1.1 201 "), status
        assert headers["x-request-id"] != "from-the-trailer"
        grown_mib = (_gateway_rss_kib(edge_platform) - before) / 1024
        assert grown_mib < 30, f"the gateway grew by {grown_mib:.0f} MiB for 5 MiB of trailer fields"
        # The key in the trailer was not the request's: another hold under it is its own.
        other = await client.post("/bookings", headers={"Idempotency-Key": key},
                                  json={"eventId": EVENT, "seatIds": [free[1]], "userId": "trailer_sender"})
        assert other.status_code == 201, other.text


@pytest.mark.parametrize("request_bytes", [
    b"GET /health HTTP/1.1\r\nHost: boxoffice\r\nX-Trace: \x01\r\n\r\n",
    b"NOT HTTP AT ALL\r\n\r\n",
    b"GET /health HTTP/9.9\r\nHost: boxoffice\r\n\r\n",
    b"POST /bookings HTTP/1.1\r\nHost: boxoffice\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
], ids=["control character in a header", "no request line", "unknown version", "broken chunk"])
async def test_a_request_that_is_not_http_gets_the_apis_json_error(platform: RunningPlatform,
                                                                   request_bytes: bytes) -> None:
    status, headers, body = await _raw_answer(platform.base_url, request_bytes)
    assert status.startswith(b"HTTP/1.1 400 "), (status, body)
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"  # as every answer
    assert json.loads(body) == {"success": False, "error": "The request is not valid HTTP", "code": "bad_request"}
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as client:
        assert (await client.get("/health")).status_code == 200
        # Counted, not logged a line each: anyone can send such bytes as fast as they like.
        metrics = (await client.get("/metrics")).text
    refused = [line for line in metrics.splitlines() if line.startswith("boxoffice_http_requests_total{")
               and 'route="refused at the edge"' in line and 'status="400"' in line]
    assert len(refused) == 1 and float(refused[0].rsplit(" ", 1)[1]) >= 1, refused
    assert "Invalid HTTP request received" not in (platform.data_dir / "logs" / "gateway.log").read_text()


async def test_a_refused_websocket_handshake_gets_the_apis_json_error(platform: RunningPlatform) -> None:
    upgrade = b"Host: boxoffice\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    for request, expected_status, code in [
        (b"GET /ws/events/" + EVENT.encode() + b" HTTP/1.1\r\n" + upgrade + b"\r\n", 400, "bad_request"),  # no key
        (b"GET /health HTTP/1.1\r\n" + upgrade + key + b"\r\n", 403, "forbidden"),  # no WebSocket there
    ]:
        status, headers, body = await _raw_answer(platform.base_url, request)
        assert status.startswith(b"HTTP/1.1 %d " % expected_status), (status, body)
        assert headers["content-type"] == "application/json"
        refusal = json.loads(body)
        assert refusal["success"] is False and refusal["code"] == code
        assert refusal["error"].startswith("WebSocket refused: ")
    # A handshake that is right still opens.
    status, headers, _ = await _raw_answer(platform.base_url, b"GET /ws/events/" + EVENT.encode() + b" HTTP/1.1\r\n"
                                           + upgrade + key + b"\r\n", stays_open=True)
    assert status.startswith(b"HTTP/1.1 101 ") and headers["upgrade"].lower() == "websocket"



@pytest.mark.parametrize("path", ["/bookings", "/events/taylor_swift_concert/waitlist"])
async def test_a_client_that_never_finishes_its_body_is_answered_408_and_cut_off(platform: RunningPlatform,
                                                                                path: str) -> None:
    request = (f"POST {path} HTTP/1.1\r\nHost: boxoffice\r\nContent-Type: application/json\r\n"
               "Content-Length: 80\r\n\r\n").encode() + b'{"eventId": "taylor_swift_concert", '
    status, headers, body = await _raw_answer(platform.base_url, request)  # until the gateway closes
    assert status.startswith(b"HTTP/1.1 408 "), (status, body)
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"success": False, "error": "The request body took too long to arrive",
                                "code": "request_timeout"}
    # The gateway serves the next request.
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as client:
        assert (await client.get("/health")).status_code == 200


async def test_a_websocket_outlives_the_body_timeout(platform: RunningPlatform) -> None:
    """The body timer is the HTTP request's: a connection upgraded to a WebSocket keeps getting changes after it."""
    import websockets

    from boxoffice.entrypoints.gateway.live_splice import BODY_TIMEOUT_SECONDS

    address = urlsplit(platform.base_url)
    async with websockets.connect(f"ws://{address.netloc}/ws/events/{EVENT}") as socket_:
        snapshot = json.loads(await asyncio.wait_for(socket_.recv(), 30))
        assert snapshot["type"] == "snapshot"
        await asyncio.sleep(BODY_TIMEOUT_SECONDS + 2)  # the time that must pass, not a wait for a condition
        async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as client:
            held = await book(client, EVENT, ["O23"], "websocket_watcher")
            assert held.status_code == 201, held.text
        async with asyncio.timeout(30):
            while True:
                frames = [json.loads(line) for line in str(await socket_.recv()).splitlines() if line.strip()]
                if any(f["type"] == "seat.reserved" and "O23" in f["seatIds"] for f in frames):
                    break


def start_with_its_port_taken(platform: RunningPlatform, service: str, port: int) -> str:
    """Stops `service`, binds its port as another process would, and asks `start`: what it said, having failed.
    The service is started again after (the shared platform serves the tests after this one)."""
    import subprocess
    import sys

    assert platform.cli("stop", service).returncode == 0
    try:
        # SO_REUSEADDR, as an attacker would: the port's earlier connections may still be in TIME_WAIT.
        with subprocess.Popen(
                [sys.executable, "-c", "import socket, sys, time\n"
                 "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                 "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); print('bound', flush=True)\n"
                 "time.sleep(300)", str(port)], stdout=subprocess.PIPE, text=True) as squatter:
            try:
                assert squatter.stdout is not None and squatter.stdout.readline() == "bound\n"
                started = platform.cli("start", service)
                assert started.returncode == 1, started.stdout
                said = started.stdout + started.stderr
                assert f"port {port} is held by pid {squatter.pid} (python" in said, said
                return said
            finally:
                squatter.kill()
    finally:
        again = platform.cli("start", service)
        assert again.returncode == 0 and "ERROR" not in again.stdout + again.stderr, again.stdout + again.stderr


def test_a_port_taken_while_the_gateway_was_stopped_is_named_and_not_taken_for_the_gateway(
        platform: RunningPlatform) -> None:
    """Another process that binds the gateway's port between `stop gateway` and `start gateway` would take the
    buyers' requests; `start` says so and fails instead of saying the gateway started."""
    said = start_with_its_port_taken(platform, "gateway", int(str(urlsplit(platform.base_url).port)))
    assert "not by the gateway" in said, said
    assert httpx.get(f"{platform.base_url}/health", timeout=10).json()["services"]["gateway"]["status"] == "up"


def test_a_realtime_port_taken_while_realtime_was_stopped_is_named_and_start_fails(
        platform: RunningPlatform) -> None:
    """Found from outside, as a local user: bound between `stop realtime` and `start realtime`, the port got the
    live streams the gateway relays (a made-up seat map reached the browser), while `start` said ERROR (spawn
    error) and exited 0."""
    said = start_with_its_port_taken(platform, "realtime", int(str(platform.runtime["realtime_port"])))
    assert "not by the realtime service" in said, said


def test_start_gateway_waits_for_the_running_platforms_port_not_the_shells(platform: RunningPlatform) -> None:
    """A shell that names only the data directory (BOXOFFICE_HTTP_PORT unset, so 8000 by default) starts the
    gateway of a platform on another port: `start` waits for that one and says it started."""
    import subprocess
    import sys

    env = {name: value for name, value in platform.env.items() if name != "BOXOFFICE_HTTP_PORT"}
    assert urlsplit(platform.base_url).port != 8000

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "boxoffice", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    assert cli("stop", "gateway").returncode == 0
    try:
        started = cli("start", "gateway")
        assert started.returncode == 0, started.stdout + started.stderr
    finally:  # the shared platform's gateway serves the tests after this one
        platform.cli("start", "gateway")
    assert httpx.get(f"{platform.base_url}/health", timeout=10).json()["services"]["gateway"]["status"] == "up"


def test_the_demo_with_the_gateway_stopped_says_so_in_one_line(platform: RunningPlatform) -> None:
    assert platform.cli("stop", "gateway").returncode == 0
    try:
        demo = platform.cli("demo", timeout=60)
    finally:  # the shared platform's gateway serves the tests after this one
        platform.cli("start", "gateway")
    said = demo.stdout + demo.stderr
    assert demo.returncode == 1 and "Traceback" not in said, said
    assert f"the gateway at {platform.base_url} does not answer" in said and "start gateway" in said, said
