"""bench holds' wrk run: the Lua script sends well-formed holds of neighbouring seats, and its counts of the
answers are the server's (wrk stops with at most one request per connection in flight)."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from boxoffice.bench.wrk_load import ensure_wrk, run_wrk

ROWS, PER_ROW, MAX_SEATS, CONNECTIONS = ["A", "B", "C"], 20, 3, 8


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
        payload = b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

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
