"""What the emails say and who they go to; the handler's once-per-booking rule and back-off, with fakes."""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtplib.email import flatten_message

from boxoffice.adapters.smtp import SmtpTarget
from boxoffice.domain.tickets import Ticket, TicketSeal
from boxoffice.messages import (
    ACCOUNT_VERIFICATION_REQUESTED,
    BOOKING_COMMAND_REJECTED,
    BOOKING_CONFIRMED,
    SEAT_RELEASED,
    SEAT_RESERVED,
    WAITLIST_UPDATED,
    Message,
)
from boxoffice.service_layer import notifications
from boxoffice.service_layer.mail import PermanentMailError, TransientMailError, UndeliverableEmails
from boxoffice.service_layer.notification_handler import NotificationHandler
from boxoffice.service_layer.notification_ports import StoredBooking
from boxoffice.service_layer.notifications import (
    CONFIRMATION,
    MAIL_POLICY,
    RELEASE_KINDS,
    EventInfo,
    SeatLabel,
    email_check_email,
    kind_of,
    qr_png,
    recipient,
    render,
    unfounded,
)

BOOKING = "6f1c1f7e-6d3a-4c59-9f39-0d3f2b8f1a11"
NOW = datetime(2029, 6, 1, 12, 0, tzinfo=UTC)
SEAL = TicketSeal(b"k" * 32)
# How the platform under test makes its confirmation links (its public address).
LINKS = "https://tickets.example.com/#verify="
EVENT = EventInfo("ev", "Night Show", "Big Hall, Town", datetime(2030, 1, 1, 20, 0, tzinfo=UTC),
                  (SeatLabel("A1", "Stalls", "A", 1), SeatLabel("A2", "Stalls", "A", 2)))
# The booking as PostgreSQL has it once paid: what its emails say, and whom they go to.
STORED = StoredBooking(BOOKING, "ev", "user_1", "", "confirmed", ("A1", "A2"), Decimal("300.00"), "USD",
                       datetime(2029, 6, 1, 12, 10, tzinfo=UTC), "pay_1")


def confirmed(**data: object) -> Message:
    return Message(BOOKING_CONFIRMED, "ev", {"bookingId": BOOKING, "userId": "user_1", "seatIds": ["A1", "A2"],
                                             "amount": 300, "currency": "USD", "paymentId": "pay_1", **data})


def released(reason: str, booking_id: str = BOOKING) -> Message:
    return Message(SEAT_RELEASED, "ev", {"bookingId": booking_id, "userId": "user_1", "seatIds": ["A1"],
                                         "reason": reason})


def ended(reason: str, booking: StoredBooking = STORED) -> StoredBooking:
    """The booking once its seats were released for `reason`."""
    status = {"timeout": "expired", "payment_failed": "payment_failed", "refunded": "refunded"}.get(reason, "cancelled")
    return replace(booking, status=status, end_reason=reason)


@pytest.mark.parametrize(("email", "user_id", "expected"), [
    ("fan@example.com", "user_1", "fan@example.com"),
    ("", "user_1", "user_1@boxoffice.test"),
    ("", "someone@example.org", "someone@example.org"),
    ("", "odd user/42", "odd_user_42@boxoffice.test"),
    ("", "a..b@c", "a.b_c@boxoffice.test"),
    ("jürgen@exämple.de", "", "jürgen@exämple.de"),  # for a server that speaks SMTPUTF8
])
def test_recipient(email: str, user_id: str, expected: str) -> None:
    assert recipient(email, user_id) == expected


@pytest.mark.parametrize("email", [
    "not an address", "x@y.z\r\nBcc: victim@example.com", "fan\u2028@example.com", "a\x00b@example.com",
    "a:b@example.com", "a[b]@example.com", "=?utf-8?q?x?=@example.com", "a..b@example.com",
])
def test_an_email_mail_cannot_go_to_as_written_is_refused_not_swapped(email: str) -> None:
    """Not sent to the user id's test mailbox instead: the buyer asked for this address."""
    with pytest.raises(PermanentMailError, match="not an address mail can be sent to"):
        recipient(email, "u")


def test_an_offered_entrys_status_told_again_calls_for_no_email() -> None:
    """A leave or a repeated join of an entry already offered answers with its status, without the offer: mailing
    it as one failed on the missing price and made a good message a dead letter."""
    told_again = Message(WAITLIST_UPDATED, "ev", {"waitlistId": BOOKING, "userId": "u", "status": "offered",
                                                  "bookingId": BOOKING, "quantity": 2})
    offer = Message(WAITLIST_UPDATED, "ev", {**told_again.data, "seatIds": ["A1", "A2"], "amount": 60.0,
                                             "currency": "USD", "expiresAt": "2029-06-01T12:10:00Z"})
    assert (kind_of(told_again), kind_of(offer)) == (None, "waitlist-offer")


def test_which_messages_call_for_which_email() -> None:
    assert kind_of(confirmed()) == "confirmation"
    assert [kind_of(released(r)) for r in ("timeout", "payment_failed", "cancelled", "other")] == [
        "hold-expired", "payment-declined", "cancellation", None]
    assert kind_of(Message(SEAT_RESERVED, "ev", {"bookingId": BOOKING})) is None


def test_confirmation_has_text_html_and_one_inline_qr_per_seat() -> None:
    mail = render(CONFIRMATION, STORED, EVENT, "boxoffice <tickets@boxoffice.test>", NOW, SEAL)
    assert mail["To"] == "user_1@boxoffice.test" and mail["Message-ID"] == f"<confirmation.{BOOKING}@boxoffice>"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "300.00 USD" in text and "Stalls, row A, seat 2 (A2)" in text and "Tuesday 1 January 2030, 20:00 UTC" in text
    html = mail.get_body(("html",))
    assert html is not None
    images = [p for p in mail.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 2
    assert all(f"cid:{p['Content-ID'].strip('<>')}" in html.get_content() for p in images)
    # Each seat's signed ticket: in its QR code, and written out in the text.
    codes = [SEAL.issue(Ticket("ev", BOOKING, seat)) for seat in ("A1", "A2")]
    assert [p.get_content() for p in images] == [qr_png(code) for code in codes]
    assert all(f"{seat}: {code}" in text for seat, code in zip(("A1", "A2"), codes, strict=True))


def _flattened(mail: EmailMessage) -> bytes:
    """As it goes to the mail server, with its MIME boundaries (random) numbered in the order they appear."""
    raw = flatten_message(mail)
    for i, boundary in enumerate(dict.fromkeys(re.findall(rb'boundary="([^"]+)"', raw))):
        raw = raw.replace(boundary, b"boundary-%d" % i)
    return raw


@pytest.mark.parametrize("kind", [CONFIRMATION, *RELEASE_KINDS.values()])
def test_an_event_name_written_as_an_encoded_word_puts_no_header_or_body_into_the_email(kind: str) -> None:
    # Found from outside: the library decoded the name as the Subject was set, and wrote its line breaks out.
    injected = base64.b64encode(b"Gala\r\nBcc: evil@x.com\r\nReply-To: help@evil.example\r\n\r\nPay again").decode()
    event = replace(EVENT, name=f"=?utf-8?b?{injected}?= =?us-ascii?q?Gala=0D=0AX-Evil:_1?=")
    booking = ended("refunded" if kind == "refund" else "cancelled") if kind != CONFIRMATION else STORED
    raw = flatten_message(render(kind, booking, event, "boxoffice <tickets@boxoffice.test>", NOW, SEAL))
    back = message_from_bytes(raw, policy=policy.default)
    assert back["Bcc"] is None and back["Reply-To"] is None and back["X-Evil"] is None
    assert f"= ?utf-8?b?{injected}?=" in str(back["Subject"]) and "\n" not in str(back["Subject"])
    assert back.get_content_type() == "multipart/alternative"


@pytest.mark.parametrize("kind", [CONFIRMATION, *RELEASE_KINDS.values()])
def test_emails_built_with_header_classes_made_once_are_what_the_standard_policy_makes(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    event = replace(EVENT, name="Nuit blanche à l'Opéra ☃ " * 6)  # a Subject folded over lines, in UTF-8
    booking = ended("refunded" if kind == "refund" else "cancelled") if kind != CONFIRMATION else STORED
    ours = _flattened(render(kind, booking, event, "boxoffice <tickets@boxoffice.test>", NOW, SEAL))
    monkeypatch.setattr(notifications, "MAIL_POLICY", policy.default)
    standard = _flattened(render(kind, booking, event, "boxoffice <tickets@boxoffice.test>", NOW, SEAL))
    assert ours == standard and b"=?utf-8?" in ours
    assert MAIL_POLICY.header_factory["Subject"] is MAIL_POLICY.header_factory["subject"]
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        EmailMessage(policy=MAIL_POLICY)["Subject"] = "two\nlines"


@pytest.mark.parametrize(("reason", "subject", "sentence"), [
    ("timeout", "Your hold on Night Show expired", "your hold expired"),
    ("payment_failed", "Payment declined for Night Show", "your payment was declined, the seats were released"),
    ("cancelled", "Your booking for Night Show was cancelled", "your booking was cancelled"),
])
def test_release_notices(reason: str, subject: str, sentence: str) -> None:
    mail = render(RELEASE_KINDS[reason], ended(reason), EVENT, "b <t@boxoffice.test>", NOW, SEAL)
    assert mail["Subject"] == subject
    assert sentence in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert mail.get_body(("html",)) is not None


def test_event_names_are_escaped_in_html() -> None:
    event = EventInfo("ev", "<script>x</script>", "", None, (SeatLabel("A1"),))
    html = render(CONFIRMATION, replace(STORED, seat_ids=("A1",)), event, "b <t@boxoffice.test>", NOW,
                  SEAL).get_body(("html",))
    assert "<script>" not in html.get_content() and "&lt;script&gt;" in html.get_content()  # type: ignore[union-attr]


class FakeRecords:
    """The notification service's database: STORED unless other bookings are given."""

    def __init__(self, *bookings: StoredBooking) -> None:
        self.bookings = {b.booking_id: b for b in bookings or (STORED,)}
        self.sent: dict[tuple[str, str], str] = {}

    async def booking(self, booking_id: str) -> StoredBooking | None:
        return self.bookings.get(booking_id)

    async def event_info(self, event_id: str, seat_ids: list[str]) -> EventInfo:
        """EVENT's name and places, for the event and seats asked for."""
        places = {s.seat_id: s for s in EVENT.seats}
        return replace(EVENT, event_id=event_id, seats=tuple(places.get(s, SeatLabel(s)) for s in seat_ids))

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
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS,
                                  first_backoff=1, max_backoff=4,
                                  sleep=sleep)
    await handler([confirmed(), confirmed()])
    assert sleeps == [1, 2, 4, 4, 4]
    assert len(sender.delivered) == 1 and records.sent == {(BOOKING, "confirmation"): "user_1@boxoffice.test"}


async def test_a_refused_email_is_not_retried_nor_recorded() -> None:
    sleeps: list[float] = []
    records, sender = FakeRecords(), FlakySender([PermanentMailError("550 no such user")])
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS,
                                  sleep=_recorded(sleeps))
    refused = confirmed()
    with pytest.raises(UndeliverableEmails) as raised:
        await handler([refused, Message(BOOKING_CONFIRMED, "ev", {"bookingId": "not-a-uuid"})])
    assert raised.value.message_ids == [refused.id] and "550 no such user" in str(raised.value)
    assert sender.delivered == [] and records.sent == {} and sleeps == []
    assert handler.counts == {"refused": 1, "malformed": 1}


def _recorded(sleeps: list[float]) -> Callable[[float], Awaitable[None]]:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
    return sleep


class RecordsOf(FakeRecords):
    def __init__(self, event: EventInfo) -> None:
        super().__init__()
        self.event = event

    async def event_info(self, event_id: str, seat_ids: list[str]) -> EventInfo:
        return self.event


def on_the_wire(mail: EmailMessage) -> EmailMessage:
    """What a mail client reads: the bytes sent, parsed again."""
    parsed = message_from_bytes(mail.as_bytes(policy=policy.SMTPUTF8), policy=policy.default)
    assert isinstance(parsed, EmailMessage) and not parsed.defects
    return parsed


# Events created before the API refused line breaks can hold them: every character str.splitlines breaks on.
SEPARATORS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", [*SEPARATORS, "\x00", "\t", "\x7f", "\x9f"], ids=repr)
async def test_an_event_name_with_a_line_break_is_sent_on_one_line(char: str) -> None:
    event = EventInfo("ev", f"Night{char}Show{char}", f"Big{char}Hall", None,
                      (SeatLabel("A1", f"Stalls{char}", "A", 1),))
    records, sender = RecordsOf(event), FlakySender([])
    records.bookings[BOOKING] = ended("refunded", replace(STORED, seat_ids=("A1",)))  # its confirmation is still due
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS)
    await handler([confirmed(seatIds=["A1"]), released("refunded")])
    confirmation, notice = (on_the_wire(m) for m in sender.delivered)
    assert confirmation["Subject"] == "Your tickets for Night Show"
    assert notice["Subject"] == "Your refund for Night Show"
    lines = confirmation.get_body(("plain",)).get_content().splitlines()  # type: ignore[union-attr]
    assert lines[2:4] == ["Night Show", "Big Hall"] and "  - Stalls, row A, seat 1 (A1)" in lines
    assert records.sent == {(BOOKING, "confirmation"): "user_1@boxoffice.test",
                            (BOOKING, "refund"): "user_1@boxoffice.test"}


@pytest.mark.parametrize(("name", "subject"), [
    ("Nacht über Köln", "Your tickets for Nacht über Köln"),
    ("x" * 2000, "Your tickets for " + "x" * 199 + "…"),
    ("\u2028\n", "Your tickets for ev"),
])
def test_long_and_non_ascii_names_make_a_readable_subject(name: str, subject: str) -> None:
    event = EventInfo("ev", name, "", None, (SeatLabel("A1"),))
    mail = render(CONFIRMATION, replace(STORED, seat_ids=("A1",)), event, "b <t@boxoffice.test>", NOW, SEAL)
    assert on_the_wire(mail)["Subject"] == subject


@pytest.mark.parametrize("email", ["fan\n@example.com", "no-at-sign", "a:b@example.com", "a\x00b@example.com"])
async def test_an_unusable_address_fails_at_once_and_the_rest_of_the_batch_is_sent(email: str) -> None:
    sleeps: list[float] = []
    other = ended("cancelled", replace(STORED, booking_id=str(uuid.uuid4())))
    records, sender = FakeRecords(replace(STORED, email=email), other), FlakySender([])
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS,
                                  sleep=_recorded(sleeps))
    bad = confirmed(email=email)
    with pytest.raises(UndeliverableEmails) as raised:
        await handler([bad, released("cancelled", other.booking_id)])
    assert raised.value.message_ids == [bad.id] and not isinstance(raised.value, TransientMailError)
    assert sleeps == [] and handler.counts["retries"] == 0
    assert [m["Subject"] for m in sender.delivered] == ["Your booking for Night Show was cancelled"]
    # The refused one is not recorded.
    assert records.sent == {(other.booking_id, "cancellation"): "user_1@boxoffice.test"}


async def test_a_booking_id_that_is_not_canonical_gets_no_email() -> None:
    """uuid.UUID() would take it, line break and all, and it goes into the Message-ID."""
    records, sender = FakeRecords(), FlakySender([])
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS)
    await handler([confirmed(bookingId=f"{BOOKING.replace('-', '')[:-1]}\n"), confirmed(bookingId=f"{{{BOOKING}}}")])
    assert sender.delivered == [] and handler.counts == {"malformed": 2}


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


CHECK_ID = "0b7a4c1e-2f5d-4e8a-9c3b-5d6e7f8a9b0c"


def email_check(email: str = "fan@example.com", link: str = "https://tickets.example.com/#verify=abc.def-ghi"
                ) -> Message:
    return Message(ACCOUNT_VERIFICATION_REQUESTED, "user_0123456789abcdef",
                   {"verificationId": CHECK_ID, "userId": "user_0123456789abcdef", "email": email, "link": link,
                    "expiresAt": "2029-06-02T12:00:00.000Z"})


def test_the_address_check_email_carries_its_link_to_the_account_s_address_only() -> None:
    assert kind_of(email_check()) == "email-confirmation"
    mail = email_check_email(email_check(), "b <t@boxoffice.test>", NOW)
    assert mail["To"] == "fan@example.com" and mail["Message-ID"] == f"<email-confirmation.{CHECK_ID}@boxoffice>"
    assert mail["X-Boxoffice-Booking"] is None
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "https://tickets.example.com/#verify=abc.def-ghi" in text and "2029-06-02T12:00:00.000Z" in text
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert '<a href="https://tickets.example.com/#verify=abc.def-ghi">' in html


def test_a_link_with_markup_is_escaped_and_an_unusable_address_is_refused() -> None:
    html = email_check_email(email_check(link='https://x.example/#verify="><script>x</script>'), "b <t@b.test>",
                             NOW).get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html and "&lt;script&gt;" in html
    with pytest.raises(PermanentMailError):
        email_check_email(email_check(email="x@y.z\r\nBcc: victim@example.com"), "b <t@b.test>", NOW)


async def test_the_address_check_is_sent_once_per_verification_id() -> None:
    records, sender = FakeRecords(), FlakySender([])
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS)
    await handler([email_check(), email_check()])
    assert len(sender.delivered) == 1 and records.sent == {(CHECK_ID, "email-confirmation"): "fan@example.com"}


class GatedSender:
    """Holds each email until the test lets it go, and notes which were on their way at once."""

    def __init__(self) -> None:
        self.delivered: list[EmailMessage] = []
        self.on_the_way: list[str] = []
        self.most_at_once = 0
        self.gate = asyncio.Event()

    async def send(self, message: EmailMessage) -> None:
        self.on_the_way.append(str(message["Message-ID"]))
        self.most_at_once = max(self.most_at_once, len(self.on_the_way))
        await self.gate.wait()
        self.on_the_way.remove(str(message["Message-ID"]))
        self.delivered.append(message)


async def test_emails_about_different_bookings_are_on_their_way_at_once() -> None:
    bookings = [str(uuid.uuid4()) for _ in range(3)]
    records, sender = FakeRecords(*(replace(STORED, booking_id=b) for b in bookings)), GatedSender()
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS)
    handling = [asyncio.ensure_future(handler([confirmed(bookingId=b)])) for b in bookings]
    async with asyncio.timeout(5):
        while sender.most_at_once < 3:
            await asyncio.sleep(0)
    sender.gate.set()
    await asyncio.gather(*handling)
    assert set(records.sent) == {(b, "confirmation") for b in bookings}


async def test_copies_of_one_message_handled_at_once_make_one_email_and_a_bookings_emails_keep_their_order() -> None:
    records, sender = FakeRecords(ended("refunded")), GatedSender()
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS)
    first, copy, then = confirmed(), confirmed(), released("refunded")
    handling = [asyncio.ensure_future(handler([m])) for m in (first, copy, then)]
    async with asyncio.timeout(5):
        while not sender.on_the_way:
            await asyncio.sleep(0)
    for _ in range(20):  # the others wait for the booking's first email, however long it takes
        await asyncio.sleep(0)
    assert sender.most_at_once == 1
    sender.gate.set()
    await asyncio.gather(*handling)
    assert [m["Message-ID"] for m in sender.delivered] == [f"<confirmation.{BOOKING}@boxoffice>",
                                                           f"<refund.{BOOKING}@boxoffice>"]
    assert handler.counts["duplicate"] == 1


async def test_a_bookings_emails_read_together_from_two_topics_go_out_in_the_order_they_happened() -> None:
    """Kafka does not order seat.released and booking.confirmed between them: a refund read ahead of the
    confirmation it follows is still mailed after it."""
    records, sender = FakeRecords(ended("refunded")), FlakySender([])
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS)
    paid, refunded = confirmed(), released("refunded")
    paid = Message(paid.type, paid.event_id, paid.data, occurred_at="2030-01-01T12:00:00.100Z")
    refunded = Message(refunded.type, refunded.event_id, refunded.data, occurred_at="2030-01-01T12:00:00.200Z")
    await handler([refunded, paid])
    assert [m["Message-ID"] for m in sender.delivered] == [f"<confirmation.{BOOKING}@boxoffice>",
                                                           f"<refund.{BOOKING}@boxoffice>"]


# Anyone who can produce to the broker can write a message: the stored booking decides which emails go out,
# to whom, and what they say.
BUYER = replace(STORED, email="fan@example.com")
FORGED = {"email": "attacker@evil.co", "userId": "attacker", "seatIds": ["B2"], "amount": 1, "paymentId": "x"}


async def test_a_forged_confirmation_of_a_pending_booking_sends_nothing_and_the_genuine_one_reaches_the_buyer() -> None:
    records, sender = FakeRecords(replace(BUYER, status="pending", payment_id=None)), FlakySender([])
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS)
    await handler([confirmed(**FORGED)])
    assert sender.delivered == [] and records.sent == {} and handler.counts == {"unfounded": 1}

    records.bookings[BOOKING] = BUYER  # the buyer pays
    await handler([confirmed(email="fan@example.com")])
    [mail] = sender.delivered
    assert mail["To"] == "fan@example.com" and records.sent == {(BOOKING, "confirmation"): "fan@example.com"}
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    codes = [SEAL.issue(Ticket("ev", BOOKING, seat)) for seat in ("A1", "A2")]
    assert all(f"{seat}: {code}" in text for seat, code in zip(("A1", "A2"), codes, strict=True))
    assert "B2" not in text and "300.00 USD" in text


async def test_an_email_about_a_booking_goes_to_the_booking_s_address_with_its_seats_whatever_the_message_says(
        ) -> None:
    refunded = ended("refunded", replace(BUYER, booking_id=str(uuid.uuid4())))
    offered = replace(BUYER, booking_id=str(uuid.uuid4()), status="pending", payment_id=None)
    records, sender = FakeRecords(BUYER, refunded, offered), FlakySender([])
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS)
    await handler([
        confirmed(**FORGED),
        Message(SEAT_RELEASED, "other_event", {"bookingId": refunded.booking_id, "reason": "refunded", **FORGED}),
        Message(WAITLIST_UPDATED, "other_event", {
            "waitlistId": str(uuid.uuid4()), "status": "offered", "bookingId": offered.booking_id, "quantity": 1,
            **FORGED, "currency": "EUR", "expiresAt": "2099-01-01T00:00:00.000Z"})])
    assert [m["To"] for m in sender.delivered] == ["fan@example.com"] * 3
    confirmation, refund, offer = (m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                                   for m in sender.delivered)
    assert "Stalls, row A, seat 1 (A1)" in confirmation and "B2" not in confirmation
    assert "Seats: A1, A2" in refund and "300.00 USD goes back" in refund
    assert "Seats: A1, A2" in offer and "Price: 300.00 USD" in offer and "until 2029-06-01T12:10:00.000Z" in offer
    assert set(records.sent.values()) == {"fan@example.com"}


async def test_a_message_about_no_stored_booking_sends_nothing_and_is_no_error() -> None:
    records, sender = FakeRecords(), FlakySender([])
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS)
    unknown = str(uuid.uuid4())
    await handler([confirmed(bookingId=unknown, **FORGED), released("timeout", unknown)])
    assert sender.delivered == [] and records.sent == {} and handler.counts == {"unfounded": 2}


@pytest.mark.parametrize("status", ["pending", "paying", "cancelled", "expired", "payment_failed"])
def test_a_confirmation_needs_a_confirmed_booking(status: str) -> None:
    assert unfounded(CONFIRMATION, replace(STORED, status=status)) == f"the booking is {status}, not confirmed"


@pytest.mark.parametrize("status", ["confirmed", "refunding", "refunded"])
def test_a_genuine_confirmation_finds_its_booking_confirmed_or_later(status: str) -> None:
    assert unfounded(CONFIRMATION, replace(STORED, status=status)) is None


@pytest.mark.parametrize("reason", list(RELEASE_KINDS))
def test_a_release_email_needs_the_booking_released_for_that_reason(reason: str) -> None:
    kind = RELEASE_KINDS[reason]
    assert unfounded(kind, ended(reason)) is None
    assert unfounded(kind, STORED) is not None  # still confirmed
    assert unfounded(kind, replace(STORED, status="pending")) is not None
    assert all(unfounded(kind, ended(other)) is not None for other in RELEASE_KINDS if other != reason)


@pytest.mark.parametrize("status", ["pending", "paying", "confirmed", "expired", "cancelled", "payment_failed"])
def test_a_waiting_list_offer_needs_its_booking_in_any_state(status: str) -> None:
    """The offer's booking may be paid, or have run out, before its email goes."""
    assert unfounded("waitlist-offer", replace(STORED, status=status)) is None
    assert unfounded("waitlist-offer", None) == "there is no such booking"


def refund_refused(booking_id: str = BOOKING) -> Message:
    return Message(BOOKING_COMMAND_REJECTED, "ev", {"bookingId": booking_id, "command": "cancel",
                                                    "code": "refund_failed", "reason": "Call +1 555 0100 now"})


async def test_a_refund_refused_when_the_event_was_cancelled_is_mailed_and_one_the_buyer_asked_for_is_not() -> None:
    # Found from outside: the cancel of an event emailed every buyer but the one whose refund the provider refused.
    cancelled = replace(BUYER, event_cancelled=True)
    asked_by_buyer = replace(BUYER, booking_id=str(uuid.uuid4()))  # answered 502 at once
    refunded = ended("refunded", replace(cancelled, booking_id=str(uuid.uuid4())))  # a later try succeeded
    records, sender = FakeRecords(cancelled, asked_by_buyer, refunded), FlakySender([])
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS)
    other = Message(BOOKING_COMMAND_REJECTED, "ev", {"bookingId": BOOKING, "command": "cancel", "code": "booking_paid"})
    await handler([refund_refused(), refund_refused(), refund_refused(asked_by_buyer.booking_id),
                   refund_refused(refunded.booking_id), other])
    [mail] = sender.delivered
    assert mail["To"] == "fan@example.com"
    assert mail["Subject"] == "Night Show was cancelled: your refund could not be made"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "The refund of 300.00 USD" in text and "Seats: A1, A2" in text and BOOKING in text
    assert "555" not in text  # the message's words are not the provider's for sure
    assert records.sent == {(BOOKING, "refund-refused"): "fan@example.com"}
    assert handler.counts == {"refund-refused": 1, "duplicate": 1, "needless": 1, "unfounded": 1}


@pytest.mark.parametrize("link", [
    "https://evil.example/phish", "https://tickets.example.com.evil.example/#verify=abc",
    "https://tickets.example.com/#verify=abc\u202edef", "https://tickets.example.com/#verify=", "",
    "https://tickets.example.com/login#verify=abc",
])
async def test_an_address_check_whose_link_the_platform_did_not_make_is_not_sent(link: str) -> None:
    """Anyone who can write to the broker can ask for this email; the platform's address would vouch for the link."""
    records, sender = FakeRecords(), FlakySender([])
    handler = NotificationHandler(records, sender, "b <t@boxoffice.test>", SEAL, confirmation_links=LINKS)
    await handler([email_check(link=link)])
    assert sender.delivered == [] and records.sent == {} and handler.counts["unfounded"] == 1
    await handler([email_check()])  # the platform's own link
    assert len(sender.delivered) == 1
