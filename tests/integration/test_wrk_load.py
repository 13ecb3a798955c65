"""The benches' wrk runs: bench holds' Lua script sends well-formed holds of neighbouring seats, bench lifecycle's
pays each listed booking once, and their counts of the answers are the server's (wrk stops with at most one
request per connection in flight)."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from boxoffice.bench.wrk_load import ensure_wrk, run_wrk, run_wrk_payments

ROWS, PER_ROW, MAX_SEATS, CONNECTIONS = ["A", "B", "C"], 20, 3, 8


def answer(handler: BaseHTTPRequestHandler, status: int, payload: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


class Recorder(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, object]]] = []
    answered: ClassVar[Counter[int]] = Counter()
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        seats = body["seatIds"]
        status = 201 if int(seats[0][1:]) % 2 else 409
        with self.lock:
            self.bodies.append(body)
            self.answered[status] += 1
        answer(self, status, b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_wrk_sends_holds_of_neighbouring_seats_and_counts_the_answers(server: str) -> None:
    wrk = ensure_wrk()
    assert wrk is not None, "wrk is missing: .ci/run installs Debian's package"
    run = run_wrk(wrk, server, "ev_wrk", ROWS, PER_ROW, MAX_SEATS, CONNECTIONS, 1, seed=7)

    bodies = Recorder.bodies
    assert len(bodies) >= run.decided > 0
    for body in bodies:
        assert body["eventId"] == "ev_wrk" and re.fullmatch(r"wrk_\d+_\d+", str(body["userId"]))
        seats = body["seatIds"]
        assert isinstance(seats, list) and 1 <= len(seats) <= MAX_SEATS
        rows = {s[0] for s in seats}
        numbers = [int(s[1:]) for s in seats]
        assert len(rows) == 1 and rows <= set(ROWS), seats
        assert numbers == list(range(numbers[0], numbers[0] + len(seats))) and numbers[-1] <= PER_ROW, seats
    assert len({str(b["userId"]) for b in bodies}) == len(bodies)
    assert run.other == 0
    cut_off = Recorder.answered[201] + Recorder.answered[409] - run.decided
    assert 0 <= cut_off <= CONNECTIONS
    assert 0 <= Recorder.answered[201] - run.created <= CONNECTIONS
    assert run.created > 0 and run.refused > 0


class PaymentRecorder(BaseHTTPRequestHandler):
    """Answers a payment 200 (402 for bookings whose id ends in 7) and /health without a booking id."""

    paid: ClassVar[list[tuple[str, dict[str, object]]]] = []
    answered: ClassVar[Counter[int]] = Counter()
    health_checks: ClassVar[int] = 0
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        found = re.fullmatch(r"/bookings/([0-9a-f-]{36})/confirm", self.path)
        assert found is not None, self.path
        booking = found.group(1)
        status = 402 if booking.endswith("7") else 200
        with self.lock:
            self.paid.append((booking, body))
            self.answered[status] += 1
        answer(self, status, json.dumps({"bookingId": booking}).encode())

    def do_GET(self) -> None:
        with self.lock:
            PaymentRecorder.health_checks += 1
        answer(self, 200, b'{"status": "ok"}')

    def log_message(self, *args: object) -> None:
        pass


def test_wrk_pays_each_listed_booking_once_and_counts_only_payments() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), PaymentRecorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        wrk = ensure_wrk()
        assert wrk is not None, "wrk is missing: .ci/run installs Debian's package"
        bookings = [(f"00000000-0000-4000-8000-{n:012d}", f"{10 + n}.5") for n in range(40)]
        run = run_wrk_payments(wrk, f"http://127.0.0.1:{httpd.server_address[1]}", bookings, 4, 1)
    finally:
        httpd.shutdown()
        httpd.server_close()

    paid = PaymentRecorder.paid
    assert sorted(b for b, _ in paid) == sorted(b for b, _ in bookings), "each listed booking paid exactly once"
    amounts = dict(bookings)
    for booking, body in paid:
        assert body == {"paymentId": f"wrk_{booking[:12]}", "amount": float(amounts[booking]),
                        "card": "4242424242424242"}
    # 40 payments take far less than the second wrk runs: both threads ran out and asked for /health, uncounted.
    assert run.ran_out and PaymentRecorder.health_checks > 0
    assert (run.paid, run.other) == (PaymentRecorder.answered[200], PaymentRecorder.answered[402]) == (36, 4)
