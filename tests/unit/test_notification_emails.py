"""What the emails say and who they go to; the handler's once-per-booking rule and back-off, with fakes."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from boxoffice.adapters.smtp import SmtpTarget
from boxoffice.messages import BOOKING_CONFIRMED, SEAT_RELEASED, SEAT_RESERVED, Message
from boxoffice.service_layer.mail import PermanentMailError, TransientMailError
from boxoffice.service_layer.notification_handler import NotificationHandler
from boxoffice.service_layer.notifications import (
    EventInfo,
    SeatLabel,
    kind_of,
    recipient,
    render,
)

BOOKING = "6f1c1f7e-6d3a-4c59-9f39-0d3f2b8f1a11"
NOW = datetime(2029, 6, 1, 12, 0, tzinfo=UTC)
EVENT = EventInfo("ev", "Night Show", "Big Hall, Town", datetime(2030, 1, 1, 20, 0, tzinfo=UTC),
                  (SeatLabel("A1", "Stalls", "A", 1), SeatLabel("A2", "Stalls", "A", 2)))


def confirmed(**data: object) -> Message:
    return Message(BOOKING_CONFIRMED, "ev", {"bookingId": BOOKING, "userId": "user_1", "seatIds": ["A1", "A2"],
                                             "amount": 300, "currency": "USD", "paymentId": "pay_1", **data})


def released(reason: str) -> Message:
    return Message(SEAT_RELEASED, "ev", {"bookingId": BOOKING, "userId": "user_1", "seatIds": ["A1"], "reason": reason})


@pytest.mark.parametrize(("data", "expected"), [
    ({"email": "fan@example.com", "userId": "user_1"}, "fan@example.com"),
    ({"email": "", "userId": "user_1"}, "user_1@boxoffice.test"),
    ({"userId": "someone@example.org"}, "someone@example.org"),
    ({"email": "not an address", "userId": "odd user/42"}, "odd_user_42@boxoffice.test"),
    ({"email": "x@y.z\r\nBcc: victim@example.com", "userId": "u"}, "u@boxoffice.test"),
])
def test_recipient(data: dict[str, object], expected: str) -> None:
    assert recipient(data) == expected


def test_which_messages_call_for_which_email() -> None:
    assert kind_of(confirmed()) == "confirmation"
    assert [kind_of(released(r)) for r in ("timeout", "payment_failed", "cancelled", "other")] == [
        "hold-expired", "payment-declined", "cancellation", None]
    assert kind_of(Message(SEAT_RESERVED, "ev", {"bookingId": BOOKING})) is None


def test_confirmation_has_text_html_and_one_inline_qr_per_seat() -> None:
    mail = render(confirmed(), EVENT, "boxoffice <tickets@boxoffice.test>", NOW)
    assert mail["To"] == "user_1@boxoffice.test" and mail["Message-ID"] == f"<confirmation.{BOOKING}@boxoffice>"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "300.00 USD" in text and "Stalls, row A, seat 2 (A2)" in text and "Tuesday 1 January 2030, 20:00 UTC" in text
    html = mail.get_body(("html",))
    assert html is not None
    images = [p for p in mail.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 2
    assert all(f"cid:{p['Content-ID'].strip('<>')}" in html.get_content() for p in images)


@pytest.mark.parametrize(("reason", "subject", "sentence"), [
    ("timeout", "Your hold on Night Show expired", "your hold expired"),
    ("payment_failed", "Payment declined for Night Show", "your payment was declined, the seats were released"),
    ("cancelled", "Your booking for Night Show was cancelled", "your booking was cancelled"),
])
def test_release_notices(reason: str, subject: str, sentence: str) -> None:
    mail = render(released(reason), EVENT, "b <t@boxoffice.test>", NOW)
    assert mail["Subject"] == subject
    assert sentence in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert mail.get_body(("html",)) is not None


def test_event_names_are_escaped_in_html() -> None:
    event = EventInfo("ev", "<script>x</script>", "", None, (SeatLabel("A1"),))
    html = render(confirmed(seatIds=["A1"]), event, "b <t@boxoffice.test>", NOW).get_body(("html",))
    assert "<script>" not in html.get_content() and "&lt;script&gt;" in html.get_content()  # type: ignore[union-attr]


class FakeRecords:
    def __init__(self) -> None:
        self.sent: dict[tuple[str, str], str] = {}

    async def event_info(self, event_id: str, seat_ids: list[str]) -> EventInfo:
        return EVENT

    async def was_sent(self, booking_id: str, kind: str) -> bool:
        return (booking_id, kind) in self.sent

    async def record_sent(self, booking_id: str, kind: str, recipient: str, message_id: str) -> None:
        self.sent[(booking_id, kind)] = recipient


class FlakySender:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.delivered: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append(message)


async def test_transient_failures_back_off_then_send_once() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    records, sender = FakeRecords(), FlakySender([TransientMailError("down")] * 5)
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", first_backoff=1, max_backoff=4, sleep=sleep)
    await handler([confirmed(), confirmed()])
    assert sleeps == [1, 2, 4, 4, 4]
    assert len(sender.delivered) == 1 and records.sent == {(BOOKING, "confirmation"): "user_1@boxoffice.test"}


async def test_a_refused_email_is_not_retried_nor_recorded() -> None:
    records, sender = FakeRecords(), FlakySender([PermanentMailError("550 no such user")])
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>")
    await handler([confirmed(), Message(BOOKING_CONFIRMED, "ev", {"bookingId": "not-a-uuid"})])
    assert sender.delivered == [] and records.sent == {}
    assert handler.counts == {"refused": 1, "malformed": 1}


@pytest.mark.parametrize(("url", "target"), [
    ("smtp://127.0.0.1:2525", SmtpTarget("127.0.0.1", 2525)),
    ("smtp://mail.example.com", SmtpTarget("mail.example.com", 25)),
    ("smtps://u%40x:p%3Aw@mail.example.com?verify=false",
     SmtpTarget("mail.example.com", 465, "u@x", "p:w", implicit_tls=True, verify_certs=False)),
])
def test_smtp_urls(url: str, target: SmtpTarget) -> None:
    assert SmtpTarget.from_url(url) == target


def test_a_url_that_is_not_smtp_is_refused() -> None:
    with pytest.raises(ValueError, match="not an SMTP URL"):
        SmtpTarget.from_url("http://example.com")
