"""`boxoffice demo`: the five scenarios of SCENARIOS.md against the running platform, shown with Rich."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from boxoffice.demo import DEMO_EVENT_ID, QUICK_HOLD_EVENT_ID

CARD = "4242424242424242"
LONGEST_WAIT_FOR_EXPIRY = 45.0


class Demo:
    def __init__(self, base_url: str, console: Console, control: Any, mailbox_url: str | None) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.console = console
        self.control = control  # (action, service) -> str: stops and starts one service
        self.mailbox_url = mailbox_url
        self.base_url = base_url

    def step(self, text: str) -> None:
        self.console.print(f"  [cyan]→[/] {text}")

    def seats(self, event_id: str = DEMO_EVENT_ID) -> dict[str, str]:
        return {s["seatId"]: s["status"] for s in self.http.get(f"/events/{event_id}/seats").json()}

    def free_seats_of(self, event_id: str) -> list[str]:
        return [seat for seat, status in self.seats(event_id).items() if status == "AVAILABLE"]

    def free_seats(self, count: int, event_id: str = DEMO_EVENT_ID) -> list[str]:
        free = self.free_seats_of(event_id)
        if len(free) < count:
            raise RuntimeError(f"the demo event {event_id} is sold out; restart with a fresh BOXOFFICE_DATA_DIR")
        return free[:count]

    def post_booking(self, seat: str, user: str, event_id: str = DEMO_EVENT_ID) -> httpx.Response:
        return self.http.post("/bookings", json={"eventId": event_id, "seatIds": [seat], "userId": user})

    def book(self, seat: str, user: str, event_id: str = DEMO_EVENT_ID) -> tuple[int, dict[str, Any]]:
        """The hold's outcome: at once, or, when the booking service answered late (202), once it has decided."""
        answer = self.post_booking(seat, user, event_id)
        body: dict[str, Any] = answer.json()
        if answer.status_code != 202:
            return answer.status_code, body
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = self.http.get(body["statusUrl"]).json()
            if state["status"] == "processed":
                return int(state["httpStatus"]), state["result"]
            time.sleep(0.2)
        raise RuntimeError(f"the booking service has not decided {body['statusUrl']} in 60 s: "
                           "is it running (`boxoffice status`)?")

    def wait_for_booking(self, status: str, seconds: float = 15.0) -> None:
        deadline = time.monotonic() + seconds
        while self.http.get("/health").json()["services"]["booking"]["status"] != status:
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)

    def run(self) -> None:
        started = self.control("start", "booking")  # stopped by hand, say: the scenarios need it
        if "already running" not in started:
            self.step(started or "booking service started")
        seats = self.free_seats(5)
        for number, (title, scenario) in enumerate([
            ("Three users click “Book” on the same seat at the same moment", self.race),
            ("Book, then pay", self.pay),
            ("Book and walk away: the hold runs out", self.abandon),
            ("The booking service goes down mid-rush", self.outage),
            ("Every browser sees every change", self.live),
        ], start=1):
            self.console.rule(f"[bold]Scenario {number}[/]: {title}")
            scenario(seats[number - 1])
        self.console.rule("[bold green]All five scenarios done")

    def race(self, seat: str) -> None:
        import concurrent.futures

        self.step(f"user_1, user_2 and user_3 POST /bookings for seat {seat} at once")
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda u: self.book(seat, f"user_{u}"), (1, 2, 3)))
        table = Table("user", "HTTP", "answer")
        for user, (status, body) in zip((1, 2, 3), answers, strict=True):
            text = f"booking {body['bookingId'][:8]}… pending" if status == 201 else body.get("error")
            table.add_row(f"user_{user}", str(status), text)
        self.console.print(table)
        held = sum(status == 201 for status, _ in answers)
        outcome = ("exactly one hold, the others got a conflict" if held == 1 else
                   f"{held} holds granted: not what this scenario shows (is the booking service up?)")
        self.step(f"seat {seat} is now [bold]{self.seats()[seat]}[/]: {outcome}")

    def pay(self, seat: str) -> None:
        _, booking = self.book(seat, "user_pay")
        self.step(f"booked {seat}: status [bold]{booking['status']}[/], seat {self.seats()[seat]}, "
                  f"{booking['amount']:.2f} {booking['currency']} due before {booking['expiresAt']}")
        paid = self.http.put(f"/bookings/{booking['bookingId']}/confirm",
                             json={"paymentId": f"demo_{booking['bookingId'][:8]}", "amount": booking["amount"],
                                   "card": CARD})
        self.step(f"PUT /bookings/…/confirm → {paid.status_code} [bold]{paid.json().get('status')}[/]; "
                  f"seat {seat} is {self.seats()[seat]}")
        if self.mailbox_url:
            subject = self._email_for(booking["bookingId"])
            self.step(f"confirmation email: [bold]{subject or 'not arrived yet'}[/] — {self.mailbox_url}")

    def _email_for(self, booking_id: str) -> str | None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                messages = httpx.get(f"{self.mailbox_url}/messages", timeout=5).json()
            except (httpx.HTTPError, ValueError):
                return None
            for message in messages:
                if booking_id in (message.get("text") or ""):
                    return str(message.get("subject"))
            time.sleep(0.3)
        return None

    def abandon(self, _demo_event_seat: str) -> None:
        # An event whose holds last 20 s (its holdSeconds), or the demo event's if the platform's are as short.
        event = self.http.get(f"/events/{QUICK_HOLD_EVENT_ID}")
        event_id = QUICK_HOLD_EVENT_ID if event.status_code == 200 else DEMO_EVENT_ID
        if event_id == QUICK_HOLD_EVENT_ID and not self.free_seats_of(event_id):
            self.step(f"every seat of {QUICK_HOLD_EVENT_ID} is held or sold just now (its holds end within "
                      f"{event.json()['holdSeconds']} s): this scenario takes a seat of {DEMO_EVENT_ID} instead")
            event_id = DEMO_EVENT_ID
        [seat] = self.free_seats(1, event_id)
        if event_id == QUICK_HOLD_EVENT_ID:
            self.step(f"at {event.json()['name']}: its holdSeconds is {event.json()['holdSeconds']}, a checkout time "
                      "of its own (the other events keep BOXOFFICE_HOLD_SECONDS)")
        _, booking = self.book(seat, "user_walks_away", event_id)
        expires = datetime.fromisoformat(booking["expiresAt"].replace("Z", "+00:00"))
        left = (expires - datetime.now(UTC)).total_seconds()
        self.step(f"booked {seat} and did not pay: seat {self.seats(event_id)[seat]}, hold ends in {left:.0f} s")
        if left > LONGEST_WAIT_FOR_EXPIRY:
            self.step(f"the hold is {left:.0f} s (start the platform with BOXOFFICE_HOLD_SECONDS=20 to watch it "
                      "run out); cancelling instead, which releases the seat the same way")
            answer = self.http.delete(f"/bookings/{booking['bookingId']}")
            self.step(f"DELETE /bookings/… → {answer.status_code}; seat {seat} is "
                      f"[bold]{self.seats(event_id)[seat]}[/]{self._next_in_line(seat, event_id)}")
            return
        with self.console.status("waiting for the hold to run out...") as status:
            while (state := self.http.get(f"/bookings/{booking['bookingId']}").json()["status"]) == "pending":
                status.update(f"seat {seat} RESERVED; "
                              f"{(expires - datetime.now(UTC)).total_seconds():.1f} s left")
                time.sleep(0.1)
        late = (datetime.now(UTC) - expires).total_seconds()
        self.step(f"booking {state} {late:.2f} s after the deadline; seat {seat} is "
                  f"[bold]{self.seats(event_id)[seat]}[/]{self._next_in_line(seat, event_id)}")

    def _next_in_line(self, seat: str, event_id: str = DEMO_EVENT_ID) -> str:
        """A released seat held again at once went to the event's waiting list (CONTRACT §8.3)."""
        return " (offered to the next on the waiting list)" if self.seats(event_id)[seat] == "RESERVED" else ""

    def outage(self, seat: str) -> None:
        self.step(self.control("stop", "booking") or "booking service stopped")
        self.wait_for_booking("down")
        queued = self.post_booking(seat, "user_patient")
        body = queued.json()
        self.step(f"POST /bookings → {queued.status_code}: {body.get('error')}")
        self.step(f"the request waits in Kafka; {body.get('statusUrl')} says "
                  f"[bold]{self.http.get(body['statusUrl']).json()['status']}[/]")
        self.step(self.control("start", "booking") or "booking service started")
        with self.console.status("waiting for the booking service to catch up..."):
            while (result := self.http.get(body["statusUrl"]).json())["status"] != "processed":
                time.sleep(0.2)
        self.step(f"processed in order: HTTP {result['httpStatus']}, seat {seat} is {self.seats()[seat]}")

    def live(self, seat: str) -> None:
        self.console.print(Panel(f"Open {self.base_url}/ in three browser windows, then book a seat with curl "
                                 "(below) and watch every window show it at once.", title="live monitor"))
        # On a line of its own, never wrapped inside a box: it is there to be copied.
        self.console.print(f"curl -X POST {self.base_url}/bookings -H 'Content-Type: application/json' "
                           f"-d '{{\"eventId\": \"{DEMO_EVENT_ID}\", \"seatIds\": [\"{seat}\"], "
                           f"\"userId\": \"user_5\"}}'", soft_wrap=True, highlight=False)
