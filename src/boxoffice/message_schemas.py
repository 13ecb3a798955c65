"""What a message of each topic must look like, checked where a consumer reads it (CONTRACT §4, §8.4).

`decode_checked` decodes the envelope and checks it and its `data` against the topic's schema, so that a
value of the wrong type is refused at the edge (and dead-lettered by the consumer loop) instead of failing
deep in a handler. A schema requires what consumers read; the other documented fields are optional but
typed when present; fields it does not name (such as `seq` on other topics) are allowed.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from boxoffice import messages as topics
from boxoffice.domain import moments
from boxoffice.domain.catalog import MAX_HOLD_SECONDS, MIN_HOLD_SECONDS
from boxoffice.domain.text import ONE_LINE, has_control, has_visible, is_mail_address
from boxoffice.domain.waiting_room import MAX_ADMISSION_MINUTES, MAX_ADMIT_PER_MINUTE
from boxoffice.messages import MalformedMessage, Message, decode

# The gateway's patterns (entrypoints/gateway/schemas.py), without anchors: used with fullmatch.
EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

MAX_SEATS = 200  # the gateway's BookingRequest.seatIds max_length
MAX_AMOUNT = 1_000_000_000  # 200 seats under the gateway's price limit (1,000,000) each
MAX_PRICE = Decimal(1_000_000)  # the gateway's NewPriceCategory.price bound
MAX_EVENT_SEATS = 100_000  # the gateway's MAX_SEATS_PER_EVENT
MAX_REASON = 200  # a MalformedMessage's reason goes into a Kafka header and a log line


def _bounded(most: int, least: int = 1) -> StringConstraints:
    # No NUL: PostgreSQL's text refuses it, and a message refused there only after retries holds its partition up.
    return StringConstraints(min_length=least, max_length=most, pattern=r"^[^\x00]*$")


Id = Annotated[str, _bounded(256)]
UserId = Annotated[str, _bounded(256)]
BookingId = Annotated[str, StringConstraints(pattern=f"^{UUID.pattern}$")]
SeatId = Annotated[str, _bounded(64)]
Seats = Annotated[list[SeatId], Field(min_length=1, max_length=MAX_SEATS)]
Amount = Annotated[float, Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Card = Annotated[str, StringConstraints(pattern=r"^[0-9]{12,19}$")]  # only in messages from before tokens
# A provider's token for a card: never all digits, so that a card number cannot pass for one.
CardToken = Annotated[str, StringConstraints(max_length=256, pattern=r"^[A-Za-z0-9_.:-]*[A-Za-z_.:-][A-Za-z0-9_.:-]*$")]
Last4 = Annotated[str, StringConstraints(pattern=r"^[0-9]{0,4}$")]
Code = Annotated[str, _bounded(64)]
Reason = Annotated[str, _bounded(8192, 0)]  # may list every seat of a request
# No line breaks either: an address goes into a mail header.
Email = Annotated[str, StringConstraints(max_length=320, pattern=r"^[^\x00\r\n]*$")]


def _moment(text: str) -> str:
    try:
        moment = moments.from_iso(text)
    except ValueError:
        raise ValueError("not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    if not moments.supported(moment):
        raise ValueError(moments.OUT_OF_RANGE)
    return text


# A time as the platform writes it (ISO-8601 with a zone): consumers read it as one, and emails show it.
Moment = Annotated[str, _bounded(64), AfterValidator(_moment)]

Seq = Annotated[int, Field(ge=1, le=2**63 - 1)]  # a PostgreSQL bigint
SeatCount = Annotated[int, Field(ge=0, le=10_000_000)]
Name = Annotated[str, _bounded(1024)]


def _shown(text: str) -> str:
    if has_control(text):
        raise ValueError("not one line: it has a line break or a control character")
    if not has_visible(text):
        raise ValueError("nothing in it would show")
    return text


def _mail_address(text: str) -> str:
    if text and not is_mail_address(text):
        raise ValueError("not a plain local@domain.tld that mail goes to as written")
    return text


# What the gateway's models refuse is refused here too, in the commands a consumer takes from outside: anyone who
# can write to the broker can send them. A name is shown on pages and in email subjects; an address is mailed to;
# a buyer's id names their bookings.
ShownName = Annotated[str, _bounded(1024), AfterValidator(_shown)]
# As the gateway's: a ticket's code names its seat, and a seat id made of other characters makes tickets that never
# scan; a row label goes into seat ids and emails.
SEAT_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$"
ROW_LABEL = r"^[A-Za-z0-9]{1,4}$"
RowLabel = Annotated[str, StringConstraints(pattern=ROW_LABEL)]
NewSeatId = Annotated[str, StringConstraints(pattern=SEAT_ID)]
MailTo = Annotated[str, StringConstraints(max_length=320), AfterValidator(_mail_address)]  # "" for none given
BuyerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")]


class Data(BaseModel):
    # strict: no coercion (12 is not "12", "1.5" is not 1.5, true is not 1)
    model_config = ConfigDict(strict=True, extra="allow")


class ReservationRequested(Data):
    """Seats picked by hand (`seatIds`), or best available (`quantity`, optionally `categoryId`, `section`)."""

    userId: BuyerId
    seatIds: Seats | None = None
    quantity: Annotated[int, Field(ge=1, le=MAX_SEATS)] | None = None
    categoryId: Code | None = None
    section: Name | None = None
    bodyHash: Annotated[str, _bounded(128, 0)] = ""
    email: MailTo | None = None
    queueAccess: Annotated[str, _bounded(2048)] | None = None  # the waiting room's access token, if sent

    @model_validator(mode="after")
    def _seats_or_quantity(self) -> ReservationRequested:
        if (self.seatIds is None) == (self.quantity is None):
            raise ValueError("give either seatIds or quantity")
        if self.seatIds is not None and (self.categoryId is not None or self.section is not None):
            raise ValueError("categoryId and section go with quantity, not seatIds")
        return self


class SeatReserved(Data):
    bookingId: BookingId
    userId: UserId
    seatIds: Seats
    amount: Amount
    currency: Currency
    expiresAt: Moment
    status: Literal["pending"] = "pending"
    seq: Seq | None = None
    available: SeatCount | None = None
    reserved: SeatCount | None = None
    booked: SeatCount | None = None


class ReservationFailed(Data):
    userId: UserId
    seatIds: Annotated[list[SeatId], Field(max_length=MAX_SEATS)]
    code: Code
    reason: Reason


class ConfirmationRequested(Data):
    bookingId: BookingId
    paymentId: Id
    amount: Amount
    cardToken: CardToken | None = None
    cardLast4: Last4 | None = None
    card: Card | None = None


class PaymentRequested(Data):
    bookingId: BookingId
    paymentId: Id
    amount: Amount
    currency: Currency
    cardToken: CardToken | None = None
    cardLast4: Last4 | None = None
    card: Card | None = None


class PaymentSucceeded(Data):
    bookingId: BookingId
    paymentId: Id
    amount: Amount | None = None
    currency: Currency | None = None
    providerRef: Id | None = None


class PaymentFailed(Data):
    bookingId: BookingId
    paymentId: Id
    amount: Amount | None = None
    currency: Currency | None = None
    declineCode: Code | None = None
    reason: Reason | None = None


class BookingConfirmed(Data):
    bookingId: BookingId
    seatIds: Seats
    paymentId: Id
    amount: Amount
    currency: Currency
    userId: UserId | None = None
    email: Email | None = None
    seq: Seq | None = None
    available: SeatCount | None = None
    reserved: SeatCount | None = None
    booked: SeatCount | None = None


class CancellationRequested(Data):
    bookingId: BookingId
    refund: bool | None = None  # the buyer gives back a paid booking (a refund), not a hold


class ReservationTimeout(Data):
    bookingId: BookingId
    expiresAt: Moment | None = None


class SeatReleased(Data):
    bookingId: BookingId
    seatIds: Seats
    reason: Code
    userId: UserId | None = None
    email: Email | None = None
    seq: Seq | None = None
    available: SeatCount | None = None
    reserved: SeatCount | None = None
    booked: SeatCount | None = None


class BookingCancelled(Data):
    bookingId: BookingId
    seatIds: Seats
    # The gateway answers by it (answers.ENDED): a status it does not know would fail there.
    status: Literal["expired", "cancelled", "payment_failed", "refunded"]
    reason: Code | None = None
    userId: UserId | None = None
    email: Email | None = None
    declineCode: Code | None = None
    declineReason: Reason | None = None
    refundId: Id | None = None  # with a refund: its id and money
    amount: Amount | None = None
    currency: Currency | None = None


class CommandRejected(Data):
    bookingId: BookingId
    command: Literal["confirm", "cancel"]
    code: Code
    reason: Reason


_PRICE = re.compile(r"[0-9]{1,7}(\.[0-9]{1,2})?")  # as the gateway writes it: no exponent, at most two decimals


def _price(text: str) -> str:
    if not _PRICE.fullmatch(text):
        raise ValueError("not an amount with at most two decimals")
    if not Decimal(text) < MAX_PRICE:
        raise ValueError("out of range")
    return text


class NewVenue(Data):
    name: ShownName
    city: Annotated[str, StringConstraints(max_length=1024, pattern=ONE_LINE)] = ""


class NewPriceCategory(Data):
    categoryId: Code
    name: ShownName
    price: Annotated[str, _bounded(32), AfterValidator(_price)]


class NewRow(Data):
    row: RowLabel
    section: ShownName
    categoryId: Code
    seats: Annotated[int, Field(ge=1, le=1000)]


class NewSeat(Data):
    seatId: NewSeatId
    row: RowLabel
    number: Annotated[int, Field(ge=0, le=MAX_EVENT_SEATS)]
    section: ShownName
    categoryId: Code


class NewOnSale(Data):
    opensAt: Moment
    waitingRoom: bool = True
    admitPerMinute: Annotated[int, Field(ge=1, le=MAX_ADMIT_PER_MINUTE)] | Literal["auto"] = 600
    admissionMinutes: Annotated[int, Field(ge=1, le=MAX_ADMISSION_MINUTES)] = 10


class EventCreationRequested(Data):
    eventId: Annotated[str, StringConstraints(pattern=f"^{EVENT_ID.pattern}$")]
    name: ShownName
    venue: NewVenue
    startsAt: Moment
    currency: Currency
    priceCategories: Annotated[list[NewPriceCategory], Field(min_length=1, max_length=50)]
    rows: Annotated[list[NewRow], Field(max_length=1000)] = []
    seats: Annotated[list[NewSeat], Field(max_length=MAX_EVENT_SEATS)] = []
    bestOrder: Annotated[list[Annotated[str, _bounded(64)]], Field(max_length=MAX_EVENT_SEATS)] = []
    onSale: NewOnSale | None = None
    organiserId: UserId | None = None  # the account that created it, with accounts on
    holdSeconds: Annotated[int, Field(ge=MIN_HOLD_SECONDS, le=MAX_HOLD_SECONDS)] | None = None

    @model_validator(mode="after")
    def _at_most_the_seats_of_an_event(self) -> EventCreationRequested:
        # Rows and listed seats each have a bound; what they make together has the gateway's too.
        if sum(row.seats for row in self.rows) + len(self.seats) > MAX_EVENT_SEATS:
            raise ValueError(f"an event has at most {MAX_EVENT_SEATS} seats")
        return self


QueueToken = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
Position = Annotated[int, Field(ge=1)]


class AccountVerificationRequested(Data):
    verificationId: BookingId  # a UUID: the email is sent once per id
    userId: UserId
    email: MailTo
    link: Annotated[str, _bounded(2048), StringConstraints(pattern=r"^https?://[^\s]+$")]
    expiresAt: Moment


class QueueJoined(Data):
    visitorId: UserId
    queueToken: QueueToken


class QueuePlaced(Data):
    visitorId: UserId
    queueToken: QueueToken
    position: Position | None = None
    new: bool
    code: Code | None = None


class QueueAdmitted(Data):
    servingPosition: Annotated[int, Field(ge=0)]
    queueSize: Annotated[int, Field(ge=0)]
    opened: bool
    admitPerMinute: Annotated[int, Field(ge=1)] | Literal["auto"]
    admissionMinutes: Annotated[int, Field(ge=1)]
    opensAt: Moment
    at: Moment
    enabled: bool = True
    firstPosition: Position | None = None
    lastPosition: Position | None = None
    admittedLastMinute: Annotated[int, Field(ge=0)] | None = None  # with "auto"


class WaitlistJoinRequested(Data):
    waitlistId: BookingId  # proposed by the gateway; a buyer already waiting keeps their entry
    userId: BuyerId
    quantity: Annotated[int, Field(ge=1, le=MAX_SEATS)]
    email: MailTo | None = None
    queueAccess: Annotated[str, _bounded(2048)] | None = None  # the waiting room's access token, if sent


class WaitlistLeaveRequested(Data):
    waitlistId: BookingId


class WaitlistUpdated(Data):
    waitlistId: BookingId
    userId: UserId
    quantity: Annotated[int, Field(ge=1, le=MAX_SEATS)]
    status: Literal["waiting", "offered", "expired", "left"]
    position: Annotated[int, Field(ge=1)] | None = None
    bookingId: BookingId | None = None
    email: Email | None = None
    joined: bool | None = None  # on a join's answer: whether this join made the entry
    # On a join's refusal (the event was called off): why, and no entry was made.
    code: Code | None = None
    reason: Reason | None = None
    # With an offer: the booking's seats, price and deadline.
    seatIds: Seats | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    expiresAt: Moment | None = None


class RefundRequested(Data):
    bookingId: BookingId
    paymentId: Id
    refundId: Id
    amount: Amount
    currency: Currency


class RefundSucceeded(RefundRequested):
    providerRef: Id | None = None


class RefundFailed(RefundRequested):
    reason: Reason


class EventCancellationRequested(Data):
    pass


class EventCancelled(Data):
    released: Annotated[int, Field(ge=0)]  # pending holds released
    toRefund: Annotated[int, Field(ge=0)]  # confirmed (or paying) bookings to refund
    cancelledNow: bool  # false when it was cancelled before


SCHEMAS: dict[str, type[Data]] = {
    topics.SEAT_RESERVATION_REQUESTED: ReservationRequested,
    topics.SEAT_RESERVED: SeatReserved,
    topics.SEAT_RESERVATION_FAILED: ReservationFailed,
    topics.BOOKING_CONFIRMATION_REQUESTED: ConfirmationRequested,
    topics.PAYMENT_REQUESTED: PaymentRequested,
    topics.PAYMENT_SUCCEEDED: PaymentSucceeded,
    topics.PAYMENT_FAILED: PaymentFailed,
    topics.BOOKING_CONFIRMED: BookingConfirmed,
    topics.BOOKING_CANCELLATION_REQUESTED: CancellationRequested,
    topics.SEAT_RESERVATION_TIMEOUT: ReservationTimeout,
    topics.SEAT_RELEASED: SeatReleased,
    topics.BOOKING_CANCELLED: BookingCancelled,
    topics.BOOKING_COMMAND_REJECTED: CommandRejected,
    topics.EVENT_CREATION_REQUESTED: EventCreationRequested,
    topics.WAITLIST_JOIN_REQUESTED: WaitlistJoinRequested,
    topics.WAITLIST_LEAVE_REQUESTED: WaitlistLeaveRequested,
    topics.WAITLIST_UPDATED: WaitlistUpdated,
    topics.EVENT_CANCELLATION_REQUESTED: EventCancellationRequested,
    topics.EVENT_CANCELLED: EventCancelled,
    topics.REFUND_REQUESTED: RefundRequested,
    topics.REFUND_SUCCEEDED: RefundSucceeded,
    topics.REFUND_FAILED: RefundFailed,
    topics.QUEUE_JOINED: QueueJoined,
    topics.QUEUE_PLACED: QueuePlaced,
    topics.QUEUE_ADMITTED: QueueAdmitted,
    topics.ONSALE_CHANGE_REQUESTED: NewOnSale,
    topics.ACCOUNT_VERIFICATION_REQUESTED: AccountVerificationRequested,
}

# A command answered under its request id: without one, nobody could be answered.
NEEDS_REQUEST_ID = frozenset({topics.SEAT_RESERVATION_REQUESTED, topics.WAITLIST_JOIN_REQUESTED,
                              topics.EVENT_CANCELLATION_REQUESTED, topics.QUEUE_JOINED})


def decode_record(raw: bytes, topic: str, key: bytes | None) -> Message:
    """As decode_checked, for a record read from Kafka with its key: a key must be the message's eventId, the
    partition that orders the event's messages (a message keyed by another event would be decided out of its
    order). A record without a key is read as its eventId says."""
    message = decode_checked(raw, topic)
    if key is not None and key != message.key:
        raise MalformedMessage(_one_line(f"keyed by {key!r}, not by its eventId {message.event_id!r}"))
    return message


def decode_checked(raw: bytes, topic: str) -> Message:
    """The message in `raw`, read from `topic`; MalformedMessage (with a one-line reason) if it is not a
    message of that topic. A topic without a schema gets the envelope's checks only."""
    try:
        message = decode(raw)
    except MalformedMessage as exc:
        raise MalformedMessage(_undecodable(exc)) from exc
    problem = _envelope_problem(message, topic)
    if problem is None:
        schema = SCHEMAS.get(topic)
        if schema is not None:
            try:
                schema.model_validate(message.data)
            except ValidationError as exc:
                problem = _first_error(exc)
        if problem is None and topic == topics.EVENT_CREATION_REQUESTED \
                and message.data["eventId"] != message.event_id:
            problem = "data.eventId differs from the envelope's eventId"
    if problem is not None:
        raise MalformedMessage(_one_line(problem))
    return message


def _envelope_problem(message: Message, topic: str) -> str | None:
    # decode checks no types: every field may hold any JSON value.
    data: object = message.data
    if message.type != topic:
        return f"type is {_show(message.type)}, not the topic it was read from ({topic})"
    if not isinstance(message.id, str) or UUID.fullmatch(message.id) is None:
        return "id is not a UUID"
    if not isinstance(message.event_id, str) or EVENT_ID.fullmatch(message.event_id) is None:
        return "eventId is not an event id"
    request_id = message.request_id
    if request_id is None:
        if topic in NEEDS_REQUEST_ID:
            return "requestId is missing"
    elif not isinstance(request_id, str) or not 0 < len(request_id) <= 256 or "\x00" in request_id:
        return "requestId is not a string of 1 to 256 characters without NUL"
    if not isinstance(message.occurred_at, str) or not 0 < len(message.occurred_at) <= 64:
        return "occurredAt is not a string of 1 to 64 characters"
    if type(message.version) is not int:
        return "version is not an integer"
    if message.version != 1:
        # A newer producer's message is kept in the dead letters, to replay once this consumer reads it.
        return f"version is {message.version}: this consumer reads version 1"
    if not isinstance(data, dict):
        return "data is not an object"
    return None


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    where = ".".join(str(part) for part in ("data", *first["loc"]))
    # The pattern itself would make the reason long and say little.
    what = "not in the expected format" if first["type"] == "string_pattern_mismatch" else first["msg"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {what}{more}"


def _undecodable(exc: MalformedMessage) -> str:
    cause = exc.__cause__
    if isinstance(cause, KeyError):
        return f"the envelope has no {_show(cause.args[0] if cause.args else '?')}"
    if isinstance(cause, TypeError):
        return "not a JSON object"
    return _one_line(f"not JSON: {exc}")


def _show(value: object) -> str:
    """A value of the message, briefly: it ends up in a log line."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 50 else repr(value[:50]) + "..."
    if isinstance(value, (list, dict)):
        return "an array" if isinstance(value, list) else "an object"
    return repr(value)[:60]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(text: str) -> str:
    text = _CONTROL.sub(" ", text)
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."
