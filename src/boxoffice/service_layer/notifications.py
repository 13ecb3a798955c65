"""The emails the notification service sends: ticket confirmation and release notices, waiting-list offers,
and the link that confirms an account's address.

Pure decisions and rendering: the handler loads the booking an email is about, its event and seats; this says
whether the booking bears the message out and turns them into an `EmailMessage`. What an email about a booking
says, and whom it goes to, comes from the stored booking, never from the message: anyone who can produce to the
broker can write a message. Text from the catalog, the booking or the message is folded to one line wherever it
goes (events created before the API refused line breaks can still hold them, and the email library refuses them
in a header); an address that mail cannot go to as written is a `PermanentMailError`.
"""

from __future__ import annotations

import email.policy
import re
import struct
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime
from html import escape

import segno
import zxingcpp

from boxoffice import messages as topics
from boxoffice.domain import errors
from boxoffice.domain.model import BookingStatus
from boxoffice.domain.text import is_mail_address, one_line
from boxoffice.domain.tickets import Ticket, TicketSeal
from boxoffice.messages import Message, iso
from boxoffice.service_layer.mail import PermanentMailError
from boxoffice.service_layer.notification_ports import EventInfo, StoredBooking
from boxoffice.service_layer.notification_ports import SeatLabel as SeatLabel  # what render takes, named here too

CONFIRMATION = "confirmation"
WAITLIST_OFFER = "waitlist-offer"
EMAIL_CHECK = "email-confirmation"  # not about a booking: sent once per verificationId
# A paid booking of a cancelled event whose refund the provider refused: it stays paid, its tickets let nobody in.
REFUND_REFUSED = "refund-refused"
# One kind per release reason: a booking is released once, and each reason reads differently.
RELEASE_KINDS = {"timeout": "hold-expired", "payment_failed": "payment-declined", "cancelled": "cancellation",
                 "event_cancelled": "event-cancelled", "refunded": "refund"}
_RELEASE_WORDING = {
    "event-cancelled": ("{event} was cancelled", "the organiser cancelled the event and your hold was released"),
    "refund": ("Your refund for {event}", "your booking was refunded and its tickets are no longer valid"),
    "hold-expired": ("Your hold on {event} expired", "your hold expired and the seats were released"),
    "payment-declined": ("Payment declined for {event}", "your payment was declined, the seats were released"),
    "cancellation": ("Your booking for {event} was cancelled", "your booking was cancelled"),
}
# A booking's confirmation is published once it is confirmed; a refund may have been asked for, or made, since.
CONFIRMED_STATUSES = frozenset({BookingStatus.CONFIRMED, BookingStatus.REFUNDING, BookingStatus.REFUNDED})
# A refused refund leaves its booking paid; the organiser (or the buyer) may since have asked again.
UNREFUNDED_STATUSES = frozenset({BookingStatus.CONFIRMED, BookingStatus.REFUNDING})
TEST_DOMAIN = "boxoffice.test"
# The API takes names of up to 200 characters; older rows may be longer, and a Subject stays readable.
SUBJECT_NAME_LIMIT = 200


def _release_kind(message: Message) -> str | None:
    return RELEASE_KINDS.get(str(message.data.get("reason", "")))


# Which email a message of each topic calls for: the topics the notification service consumes.
KIND_BY_TOPIC: dict[str, Callable[[Message], str | None]] = {
    topics.BOOKING_CONFIRMED: lambda _: CONFIRMATION,
    topics.SEAT_RELEASED: _release_kind,
    # Only the update that makes the offer carries it (seats, price, deadline); an entry's status told again (the
    # answer to a leave or a repeated join of an entry already offered) is no new offer to mail.
    topics.WAITLIST_UPDATED: lambda m: WAITLIST_OFFER if m.data.get("status") == "offered" and m.data.get("seatIds")
    else None,
    topics.ACCOUNT_VERIFICATION_REQUESTED: lambda _: EMAIL_CHECK,
    topics.BOOKING_COMMAND_REJECTED: lambda m: REFUND_REFUSED if m.data.get("code") == errors.RefundFailed.code
    else None,
}


def subject_id(kind: str, data: dict[str, object]) -> str:
    """What an email is about, for sending it once: the booking, or the address check itself."""
    return str(data.get("verificationId" if kind == EMAIL_CHECK else "bookingId") or "")


def kind_of(message: Message) -> str | None:
    """Which email a message calls for, if any."""
    kind = KIND_BY_TOPIC.get(message.type)
    return kind(message) if kind is not None else None


def unfounded(kind: str, booking: StoredBooking | None) -> str | None:
    """Why the stored booking does not bear out an email of `kind` about it, or None when it does. A genuine
    message is published after the transaction that decided it committed, so it always finds its booking in the
    state it tells of, or a later one: confirmed then refunded, released for good, an offer paid or run out."""
    if booking is None:
        return "there is no such booking"
    if kind == CONFIRMATION and booking.status not in CONFIRMED_STATUSES:
        return f"the booking is {booking.status}, not confirmed"
    if kind in RELEASE_KINDS.values() and RELEASE_KINDS.get(booking.end_reason or "") != kind:
        return f"the booking is {booking.status}, its seats not released for that reason"
    if kind == REFUND_REFUSED and booking.status not in UNREFUNDED_STATUSES:
        return f"the booking is {booking.status}, not paid and unrefunded"
    return None


def needless(kind: str, booking: StoredBooking) -> bool:
    """Whether the buyer has been told already: a refund they asked for themselves and the provider refused was
    answered at once (502); only one asked for by the cancel of their event needs an email."""
    return kind == REFUND_REFUSED and not booking.event_cancelled


def recipient(email: str, user_id: str) -> str:
    """The buyer's email; without one, the user id if it is an address, else a mailbox on the test domain.
    An email given that mail cannot go to as written is refused for good, never swapped for another."""
    email = email.strip()
    if email:
        if not is_mail_address(email):
            raise PermanentMailError(f"the buyer's email {email!r} is not an address mail can be sent to")
        return email
    user = user_id.strip()
    if is_mail_address(user):
        return user
    local = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._+-]", "_", user)).strip(".") or "unknown"
    return f"{local}@{TEST_DOMAIN}"


def message_id(kind: str, booking_id: str) -> str:
    """The same per (booking, kind), so a mail system can recognise a resend as a duplicate."""
    return f"<{kind}.{booking_id}@boxoffice>"


QR_SCALE = 5  # pixels per module
QR_BORDER = 2  # modules of quiet zone around the symbol
# segno picks the mask by scoring all eight (about 5.5 of its 8.4 ms per code here) and writes its PNG pixel by
# pixel (1.7 ms). Every reader decodes any mask, so one is fixed; and the 1-bit PNG is built a row at a time,
# with the same pixels as segno's own writer (tests/unit/test_ticket_qr.py holds them together).
QR_MASK = 0
_ZXING_MODULES = bytes.maketrans(b"\x00\xff", b"\x01\x00")  # zxing's image: 0 dark, 255 light


def qr_symbol(payload: str) -> segno.QRCode:
    """Text beyond ASCII (qr_modules draws the rest): never a Micro QR code (not every reader reads them), as
    UTF-8, said so by an ECI header, so a reader does not guess another character set. Always in byte mode:
    segno took UTF-8 bytes that pair as Shift JIS ("ଂ0") for kanji, which readers read as Shift JIS."""
    return segno.make(payload, error="m", mask=QR_MASK, boost_error=False, micro=False, encoding="utf-8", eci=True,
                      mode="byte")


def qr_modules(payload: str) -> list[bytes]:
    """The symbol's rows, 1 for a dark module. A ticket code is ASCII: zxing-cpp draws it in 0.3 ms against
    segno's 1.4 (a third of an email's CPU was segno's). Text beyond ASCII goes to segno, which says UTF-8 in
    an ECI header; zxing-cpp's writer offers no way to."""
    if not payload.isascii():
        return [bytes(row) for row in qr_symbol(payload).matrix]
    image = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M").to_image(
        scale=1, add_quiet_zones=False)
    height, width = image.shape
    modules = bytes(memoryview(image)).translate(_ZXING_MODULES)  # type: ignore[arg-type]  # a buffer, unsaid
    return [modules[y * width:(y + 1) * width] for y in range(height)]


def qr_png(payload: str) -> bytes:
    """The ticket's QR code as a 1-bit greyscale PNG."""
    matrix = qr_modules(payload)
    size = (len(matrix) + 2 * QR_BORDER) * QR_SCALE
    row_bytes = (size + 7) // 8
    module = {0: "1" * QR_SCALE, 1: "0" * QR_SCALE}  # light modules are white (1), dark ones black (0)
    edge = "1" * (QR_BORDER * QR_SCALE)
    tail = edge + "1" * (row_bytes * 8 - size)  # the right quiet zone and the padding to whole bytes
    quiet = (b"\x00" + b"\xff" * row_bytes) * (QR_BORDER * QR_SCALE)  # each line: filter type 0, then pixels
    lines = [quiet]
    for row in matrix:
        bits = edge + row.decode("latin-1").translate(module) + tail
        lines.append((b"\x00" + int(bits, 2).to_bytes(row_bytes, "big")) * QR_SCALE)
    lines.append(quiet)
    header = struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)  # width, height, 1 bit, greyscale, no interlace
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"".join(lines), 9)) + _png_chunk(b"IEND", b""))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def money(amount: object, currency: str) -> str:
    return f"{Decimal(str(amount)).quantize(Decimal('0.01')):,} {currency}"


def _readable(event: EventInfo) -> EventInfo:
    """The event with every text folded to one line: it goes into the Subject and into body lines."""
    seats = tuple(SeatLabel(one_line(s.seat_id), one_line(s.section), one_line(s.row), s.number) for s in event.seats)
    return EventInfo(event.event_id, one_line(event.name) or one_line(event.event_id), one_line(event.venue),
                     event.starts_at, seats)


def _subject(template: str, event: EventInfo) -> str:
    # "=?" begins an RFC 2047 encoded word, which the email library decodes as the header is set: a name written
    # as one would carry its decoded line breaks, and headers or a body after them, into the email.
    return template.format(event=one_line(event.name, SUBJECT_NAME_LIMIT).replace("=?", "= ?"))


def _ticket_filename(seat_id: str) -> str:
    return f"ticket-{re.sub(r'[^A-Za-z0-9_-]', '_', seat_id)}.png"


class _HeaderClasses(HeaderRegistry):
    """The standard library's header classes, each made once: its registry makes a new class for every header
    an email is given or written with, a tenth of an email's CPU, and as much again when it is flattened."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[type, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        kind = self.registry.get(name.lower(), self.default_class)  # a few kinds, whatever the names
        made = self._made.get(kind)
        if made is None:
            made = self._made[kind] = super().__getitem__(name)
        return made


# email.policy.default with its header classes made once; the parts an email is built of take its policy.
MAIL_POLICY = email.policy.default.clone(header_factory=_HeaderClasses())


def _headers(kind: str, about: str, to: str, sender: str, subject: str, now: datetime) -> EmailMessage:
    mail = EmailMessage(policy=MAIL_POLICY)
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = format_datetime(now.astimezone(UTC))
    mail["Message-ID"] = message_id(kind, about)
    return mail


def _envelope(kind: str, booking_id: str, to: str, sender: str, subject: str, now: datetime) -> EmailMessage:
    mail = _headers(kind, booking_id, to, sender, subject, now)
    mail["X-Boxoffice-Booking"] = booking_id
    return mail


def _to(booking: StoredBooking) -> str:
    return recipient(booking.email, booking.user_id)


def _price(booking: StoredBooking) -> str:
    return money(booking.amount, one_line(booking.currency))


def confirmation_email(booking: StoredBooking, event: EventInfo, sender: str, now: datetime,
                       seal: TicketSeal) -> EmailMessage:
    """The tickets: one QR code per seat, signed with the install's key (POST /tickets/verify checks it)."""
    event = _readable(event)
    booking_id, payment_id = booking.booking_id, one_line(booking.payment_id or "")
    total = _price(booking)
    mail = _envelope(CONFIRMATION, booking_id, _to(booking), sender, _subject("Your tickets for {event}", event),
                     now)
    seat_lines = "\n".join(f"  - {s.describe()}" for s in event.seats)
    codes = [seal.issue(Ticket(booking.event_id, booking_id, s.seat_id)) for s in event.seats]
    # The QR codes' text too: a mail reader without HTML still has the tickets.
    code_lines = "\n".join(f"  {s.seat_id}: {code}" for s, code in zip(event.seats, codes, strict=True))
    mail.set_content(
        f"Your booking is confirmed.\n\n{event.name}\n{event.venue}\n{event.when}\n\n"
        f"Seats:\n{seat_lines}\n\nAmount paid: {total}\nBooking: {booking_id}\nPayment: {payment_id}\n\n"
        "Show the QR code of each ticket at the entrance (one per seat, in the HTML version of this email).\n"
        f"Ticket codes (what the QR codes say):\n{code_lines}\n")
    cids = [f"ticket{i}.{booking_id}@boxoffice" for i in range(len(event.seats))]
    tickets = "".join(
        f'<tr><td style="padding:8px"><img src="cid:{cid}" width="145" height="145" alt="QR code for seat '
        f'{escape(s.seat_id)}"></td><td style="padding:8px">{escape(s.describe())}</td></tr>'
        for s, cid in zip(event.seats, cids, strict=True))
    mail.add_alternative(
        f"<html><body style=\"font-family:sans-serif\"><h2>Your booking is confirmed</h2>"
        f"<p><strong>{escape(event.name)}</strong><br>{escape(event.venue)}<br>{escape(event.when)}</p>"
        f"<table>{tickets}</table>"
        f"<p>Amount paid: <strong>{escape(total)}</strong><br>Booking: <code>{escape(booking_id)}</code><br>"
        f"Payment: <code>{escape(payment_id)}</code></p>"
        "<p>Show the QR code of each ticket at the entrance.</p></body></html>", subtype="html")
    html_part = mail.get_body(("html",))
    assert html_part is not None
    for seat, cid, code in zip(event.seats, cids, codes, strict=True):
        html_part.add_related(qr_png(code), "image", "png", cid=f"<{cid}>",
                              filename=_ticket_filename(seat.seat_id), disposition="inline")
    return mail


def release_email(kind: str, booking: StoredBooking, event: EventInfo, sender: str, now: datetime) -> EmailMessage:
    event = _readable(event)
    booking_id = booking.booking_id
    subject, sentence = _RELEASE_WORDING[kind]
    mail = _envelope(kind, booking_id, _to(booking), sender, _subject(subject, event), now)
    seats = ", ".join(s.seat_id for s in event.seats)
    closing = (f"{_price(booking)} goes back to the card you paid with."
               if kind == "refund" else
               "Nothing was charged for these seats. You are welcome to book again while seats are available.")
    mail.set_content(
        f"Hello,\n\nfor {event.name} ({event.venue}, {event.when}) {sentence}.\n\n"
        f"Seats: {seats}\nBooking: {booking_id}\n\n{closing}\n")
    mail.add_alternative(
        f"<html><body style=\"font-family:sans-serif\"><p>Hello,</p><p>for <strong>{escape(event.name)}</strong> "
        f"({escape(event.venue)}, {escape(event.when)}) {escape(sentence)}.</p>"
        f"<p>Seats: {escape(seats)}<br>Booking: <code>{escape(booking_id)}</code></p>"
        f"<p>{escape(closing)}</p></body></html>", subtype="html")
    return mail


def offer_email(booking: StoredBooking, event: EventInfo, sender: str, now: datetime) -> EmailMessage:
    """Seats from the waiting list: held for the buyer as a pending booking until its deadline."""
    event = _readable(event)
    booking_id = booking.booking_id
    mail = _envelope(WAITLIST_OFFER, booking_id, _to(booking), sender,
                     _subject("Seats for {event} are held for you", event), now)
    seats = ", ".join(s.seat_id for s in event.seats)
    price = _price(booking)
    until = iso(booking.expires_at)
    pay = f"PUT /bookings/{booking_id}/confirm"
    mail.set_content(
        f"Hello,\n\nseats came free for {event.name} ({event.venue}, {event.when}), and you were next on the "
        f"waiting list. They are held for you until {until}.\n\nSeats: {seats}\nPrice: {price}\n"
        f"Booking: {booking_id}\n\nPay before then ({pay}) to keep them; after that they go to the next "
        "person waiting.\n")
    mail.add_alternative(
        f"<html><body style=\"font-family:sans-serif\"><p>Hello,</p><p>seats came free for "
        f"<strong>{escape(event.name)}</strong> ({escape(event.venue)}, {escape(event.when)}), and you were next "
        f"on the waiting list. They are held for you until <strong>{escape(until)}</strong>.</p>"
        f"<p>Seats: {escape(seats)}<br>Price: {escape(price)}<br>Booking: <code>{escape(booking_id)}</code></p>"
        f"<p>Pay before then (<code>{escape(pay)}</code>) to keep them; after that they go to the next person "
        "waiting.</p></body></html>", subtype="html")
    return mail


def confirmation_link_prefix(public_base_url: str) -> str:
    """How every link that confirms an address begins (the gateway's send_email_check makes them)."""
    return f"{public_base_url}/#verify="


def foreign_link(message: Message, prefix: str) -> str | None:
    """Why an address check's link is not one the gateway made (anyone who can write to the broker can ask for
    this email, and the platform's own address would vouch for their link); None when it is: the configured
    public address, then a token's characters only."""
    link = str(message.data.get("link") or "")
    if not link.startswith(prefix) or not _TOKEN.fullmatch(link[len(prefix):]):
        return f"its link is not one of this platform's ({prefix}…)"
    return None


_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,2048}")


def email_check_email(message: Message, sender: str, now: datetime) -> EmailMessage:
    """The link that confirms an account's address (the gateway made it, under the configured public URL)."""
    data = message.data
    to = str(data.get("email") or "").strip()
    if not is_mail_address(to):
        raise PermanentMailError(f"the account's email {to!r} is not an address mail can be sent to")
    link, until = one_line(str(data["link"])), one_line(str(data.get("expiresAt") or ""))
    mail = _headers(EMAIL_CHECK, str(data["verificationId"]), to, sender, "Confirm your email address for boxoffice",
                    now)
    mail.set_content(
        f"Hello,\n\nsomeone, we hope you, made a boxoffice account with this address. To confirm it, open this "
        f"link before {until}:\n\n{link}\n\nUntil then the account cannot hold seats. If it was not you, "
        "ignore this email: nothing happens without the link.\n")
    mail.add_alternative(
        f"<html><body style=\"font-family:sans-serif\"><p>Hello,</p><p>someone, we hope you, made a boxoffice "
        f"account with this address. To confirm it, open this link before <strong>{escape(until)}</strong>:</p>"
        f"<p><a href=\"{escape(link, quote=True)}\">Confirm my email address</a></p>"
        f"<p style=\"word-break:break-all\"><code>{escape(link)}</code></p><p>Until then the account cannot hold "
        "seats. If it was not you, ignore this email: nothing happens without the link.</p></body></html>",
        subtype="html")
    return mail


def render(kind: str, booking: StoredBooking, event: EventInfo, sender: str, now: datetime,
           seal: TicketSeal) -> EmailMessage:
    """An email about a booking, from the booking as stored (`unfounded` said it bears the email out)."""
    if kind == CONFIRMATION:
        return confirmation_email(booking, event, sender, now, seal)
    if kind == WAITLIST_OFFER:
        return offer_email(booking, event, sender, now)
    if kind == REFUND_REFUSED:
        return refund_refused_email(booking, event, sender, now)
    return release_email(kind, booking, event, sender, now)


def refund_refused_email(booking: StoredBooking, event: EventInfo, sender: str, now: datetime) -> EmailMessage:
    """The event was called off and its refund refused: the buyer learns that their money has not come back.
    The provider's words are not repeated: a message names them, and a message may be forged."""
    event = _readable(event)
    mail = _envelope(REFUND_REFUSED, booking.booking_id, _to(booking), sender,
                     _subject("{event} was cancelled: your refund could not be made", event), now)
    seats = ", ".join(s.seat_id for s in event.seats)
    total = _price(booking)
    mail.set_content(
        f"Hello,\n\n{event.name} ({event.venue}, {event.when}) was cancelled by its organiser. The refund of "
        f"{total} for your booking was refused by the payment provider, so the money has not come back to your "
        f"card yet. Please contact the organiser about it.\n\nYour booking stays paid, and its tickets no longer "
        f"let anyone in.\n\nBooking: {booking.booking_id}\nSeats: {seats}\n")
    return mail
