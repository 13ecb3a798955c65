"""Request and response bodies of the public API (CONTRACT §3)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import pycountry
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from boxoffice.domain.catalog import MAX_HOLD_SECONDS, MIN_HOLD_SECONDS
from boxoffice.domain.text import CONTROL, MAX_ADDRESS_LENGTH, ONE_LINE, has_control, has_visible, is_mail_address
from boxoffice.message_schemas import ROW_LABEL, SEAT_ID, Currency

EVENT_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
USER_ID = r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$"
UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

EventId = Annotated[str, StringConstraints(pattern=EVENT_ID)]
SeatId = Annotated[str, StringConstraints(pattern=SEAT_ID)]
UserId = Annotated[str, StringConstraints(pattern=USER_ID)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)


def _one_line(value: object) -> object:
    # Runs before the pattern and the trimming: a sentence instead of the pattern, and a line break at
    # either end is refused like one inside.
    if isinstance(value, str) and has_control(value):
        raise PydanticCustomError("control_character", "must be one line, without line breaks or control characters")
    return value


def _mail_address(value: object) -> object:
    if isinstance(value, str) and not has_control(value) and not (
            _EMAIL.fullmatch(value) and is_mail_address(value)):
        raise PydanticCustomError("email", "must be a plain email address such as fan@example.com")
    return _one_line(value)


# Free text that is shown, logged or mailed (in an email's Subject, say): one line, no control characters.
# The pattern says so in the OpenAPI schema (and lets the fuzzer make valid text); the validator explains.
OneLine = BeforeValidator(_one_line)


def _visible(value: str) -> str:
    # A name of zero-width spaces, marks or byte-order marks alone would show as nothing at all.
    if not has_visible(value):
        raise PydanticCustomError("invisible_text", "must have a visible character")
    return value


Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True, pattern=ONE_LINE),
                 OneLine, AfterValidator(_visible)]
# An address the notification service can send to as it is (boxoffice.domain.text.is_mail_address).
_PART = rf'[^@\s"(),:;<>\[\]\\{CONTROL}\ufeff]'  # ECMA's \s (the fuzzer's) has U+FEFF, Rust's not
EMAIL = rf"^{_PART}{{1,64}}@{_PART}{{1,190}}\.{_PART}{{1,63}}$"
_EMAIL = re.compile(EMAIL)
Email = Annotated[str, StringConstraints(max_length=MAX_ADDRESS_LENGTH, pattern=EMAIL), BeforeValidator(_mail_address)]
PaymentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


def _iso_currency(value: str) -> str:
    # After the pattern: three capitals that ISO 4217 does not list (ZZZ) are refused too.
    if pycountry.currencies.get(alpha_3=value) is None:
        raise PydanticCustomError("currency", "must be an ISO 4217 currency code such as USD or EUR")
    return value


CurrencyCode = Annotated[Currency, AfterValidator(_iso_currency)]
CardNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{12,19}$")]


class BookingRequest(Strict):
    """Seats picked by hand (`seatIds`), or the best `quantity` seats together (optionally of a `categoryId`
    and `section`), chosen by the booking service."""

    event_id: EventId = Field(alias="eventId", examples=["taylor_swift_concert"])
    seat_ids: list[SeatId] | None = Field(None, alias="seatIds", min_length=1, max_length=200, examples=[["A1"]])
    quantity: int | None = Field(None, ge=1, le=200, examples=[2],
                                 description="Best available: this many seats next to each other in one row")
    category_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")] | None = Field(
        None, alias="categoryId", description="Best available: only seats of this price category")
    section: Text | None = Field(None, description="Best available: only seats of this section")
    user_id: UserId | None = Field(None, alias="userId", examples=["user_1"],
                                   description="Who books: required in the open demo; with accounts on it comes "
                                               "from the token and, if given, must be the token's user")
    email: Email | None = Field(None, description="Where the confirmation goes; default the account's email, or "
                                                  "<userId>@boxoffice.test in the demo")


class WaitlistJoin(Strict):
    quantity: int = Field(ge=1, le=200, examples=[2], description="How many seats, together in one row")
    user_id: UserId | None = Field(None, alias="userId", examples=["user_1"],
                                   description="Who waits: required in the open demo; with accounts on, the token's "
                                               "user")
    email: Email | None = Field(None, description="Where the offer goes; default the account's email, or "
                                                  "<userId>@boxoffice.test in the demo")


class WaitlistEntry(BaseModel):
    success: Literal[True] = True
    waitlistId: str
    eventId: str
    userId: str
    quantity: int
    status: Literal["waiting", "offered", "expired", "left"]
    position: int | None = Field(description="Place in line now (1: the next offer), while waiting")
    bookingId: str | None = Field(description="The pending booking an offer holds the seats in")


class ConfirmRequest(Strict):
    payment_id: PaymentId = Field(alias="paymentId", examples=["payment_789"])
    # 0 pays for a free booking; any other booking's amount must match its price (422 amount_mismatch). NaN and the
    # infinities (Python's JSON reader takes them) are refused as not finite, not as out of range.
    amount: float = Field(ge=0, lt=1_000_000, allow_inf_nan=False, examples=[150.00])
    card: CardNumber | None = Field(None, examples=["4242424242424242"],
                                    description="Test card; 4000000000000002 is declined")


class BookingAnswer(BaseModel):
    success: bool
    status: str
    bookingId: str
    paymentId: str | None = None


class ErrorBody(BaseModel):
    success: Literal[False] = False
    error: str
    code: str


class BookingHeld(BaseModel):
    success: Literal[True] = True
    bookingId: str
    status: Literal["pending"]
    eventId: str
    userId: str
    seatIds: list[str]
    amount: float
    currency: str
    expiresAt: str
    requestId: str


class TicketCheck(Strict):
    ticket: str = Field(min_length=1, max_length=512, description="The QR code's text, as scanned")


class TicketVerdict(BaseModel):
    success: bool = Field(description="true only for `valid`: let the holder in")
    status: Literal["valid", "already_used", "invalid"]
    eventId: str | None = None
    bookingId: str | None = None
    seatId: str | None = None
    usedAt: str | None = Field(None, description="the first entry: now for `valid`, earlier for `already_used`")
    reason: str | None = Field(None, description="why not `valid`: forged, unsigned, malformed, unknown_booking, "
                                                 "seat_not_in_booking, booking_<status>, already_used")
    message: str | None = None


class SeatsUnavailable(ErrorBody):
    seatIds: list[str]


class RequestQueued(BaseModel):
    success: Literal[False] = False
    status: Literal["queued"]
    requestId: str
    statusUrl: str
    error: str


class RequestStatus(BaseModel):
    success: bool  # true only for a request that came to what it asked (`httpStatus` 201, or 200 for a join)
    requestId: str
    status: Literal["queued", "processed"]
    httpStatus: int | None = None
    result: dict[str, object] | None = None


class BookingList(BaseModel):
    success: Literal[True] = True
    userId: str
    bookings: list[Booking]


class Booking(BaseModel):
    success: Literal[True] = True
    bookingId: str
    eventId: str
    userId: str
    status: Literal["pending", "confirmed", "cancelled", "expired", "payment_failed", "refunded"]
    seatIds: list[str]
    amount: float
    currency: str
    expiresAt: str
    paymentId: str | None
    createdAt: str
    updatedAt: str
    refundId: str | None = Field(None, description="Once refunded: the refund's id")


class Venue(BaseModel):
    name: str
    city: str


class EventSummary(BaseModel):
    eventId: str
    name: str
    venue: Venue
    startsAt: str
    date: str
    currency: str
    totalSeats: int
    available: int
    reserved: int
    booked: int
    status: Literal["on_sale", "cancelled"]


class PriceCategory(BaseModel):
    categoryId: str
    name: str
    price: float
    seats: int


class Cancellation(BaseModel):
    cancelledAt: str
    holdsReleased: int
    bookingsToRefund: int
    bookingsRefunded: int
    refundsRefused: int  # confirmed bookings whose refund the provider refused: their tickets let nobody in
    done: bool
class OnSaleView(BaseModel):
    opensAt: str
    waitingRoom: bool
    admitPerMinute: int | Literal["auto"]
    admissionMinutes: int


class QueueFigures(BaseModel):
    """The waiting room's live figures."""

    opened: bool
    size: int = Field(description="Visitors who joined")
    waiting: int = Field(description="Visitors not yet admitted")
    servingPosition: int
    admittedLastMinute: int = Field(description="Visitors admitted in the last minute: the admission rate")
    preQueueSize: int | None = Field(description="Visitors placed in random order at the opening")
    shuffleDigest: str | None = Field(description="SHA-256 of the opening's draw, for audits")


class EventDetail(EventSummary):
    priceCategories: list[PriceCategory]
    sections: list[str]
    cancellation: Cancellation | None = Field(None, description="Once called off: how far the cancellation is")
    onSale: OnSaleView | None = None
    queue: QueueFigures | None = None
    holdSeconds: int | None = Field(None, description="How long a hold of its seats lasts, in seconds, when the "
                                    "event sets it; null: the platform's BOXOFFICE_HOLD_SECONDS")


class SeatView(BaseModel):
    seatId: str
    row: str
    number: int
    section: str
    category: str
    price: float
    status: Literal["AVAILABLE", "RESERVED", "BOOKED"]


CategoryId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")]
RowLabel = Annotated[str, StringConstraints(pattern=ROW_LABEL)]


class NewVenue(Strict):
    name: Text
    city: Annotated[str, StringConstraints(max_length=100, strip_whitespace=True, pattern=ONE_LINE), OneLine] = ""


class NewPriceCategory(Strict):
    category_id: CategoryId = Field(alias="categoryId")
    name: Text
    price: float = Field(ge=0, lt=1_000_000, allow_inf_nan=False)


class NewRow(Strict):
    row: RowLabel
    seats: int = Field(ge=1, le=1000)
    section: Text = "Main"
    category_id: CategoryId = Field(alias="categoryId")


class NewSeat(Strict):
    seat_id: SeatId = Field(alias="seatId")
    row: RowLabel
    number: int = Field(ge=0, le=100_000)
    section: Text = "Main"
    category_id: CategoryId = Field(alias="categoryId")


QUEUE_TOKEN = r"^[A-Za-z0-9_-]{16,64}$"


def _admit_rate(value: object) -> object:
    # One clear sentence instead of one error per member of the union.
    if value == "auto" or (type(value) is int and 1 <= value <= 1_000_000):
        return value
    raise PydanticCustomError("admit_rate", 'must be a whole number from 1 to 1000000, or "auto"')


AdmitRate = Annotated[Annotated[int, Field(ge=1, le=1_000_000)] | Literal["auto"], BeforeValidator(_admit_rate)]


class NewOnSale(Strict):
    """When the sale opens, and whether a waiting room stands in front of it (CONTRACT §8.1)."""

    opens_at: str = Field(alias="opensAt", examples=["2027-06-01T09:00:00Z"])
    waiting_room: bool = Field(True, alias="waitingRoom")
    admit_per_minute: AdmitRate = Field(
        600, alias="admitPerMinute",
        description='Admissions a minute, or "auto": as fast as the booking side takes them (a ceiling on the '
                    "admitted visitors who have not finished)")
    admission_minutes: int = Field(10, alias="admissionMinutes", ge=1, le=1440)


class OnSaleChange(Strict):
    """PUT /events/{eventId}/onsale: what to set or change. A field left out keeps its current value (the
    defaults of `NewOnSale` for an event without an on-sale yet, which needs `opensAt`)."""

    opens_at: str | None = Field(None, alias="opensAt", examples=["2027-06-01T09:00:00Z"])
    waiting_room: bool | None = Field(None, alias="waitingRoom")
    admit_per_minute: AdmitRate | None = Field(None, alias="admitPerMinute")
    admission_minutes: int | None = Field(None, alias="admissionMinutes", ge=1, le=1440)


class QueueProof(Strict):
    challenge: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._-]+$",
                           description="From POST /events/{eventId}/queue/challenge, for the same visitor")
    solution: str = Field(min_length=1, max_length=32, pattern=r"^[0-9]+$",
                          description='sha256("<challenge>:<solution>") starts with `bits` zero bits')


class QueueJoin(Strict):
    """The visitor who joins: in the open demo the body's `visitorId`; with accounts on, the token's account."""

    visitor_id: UserId | None = Field(None, alias="visitorId", examples=["fan_1"])
    proof: QueueProof | None = Field(None, description="Needed when the waiting room asks for a proof of work "
                                                       "(BOXOFFICE_QUEUE_PROOF_OF_WORK_BITS)")


class QueueChallengeRequest(Strict):
    """The visitor a challenge is for (with accounts on, the token's account)."""

    visitor_id: UserId | None = Field(None, alias="visitorId", examples=["fan_1"])


class QueueChallenge(BaseModel):
    success: bool
    challenge: str
    bits: int
    expiresAt: str


class QueueJoined(BaseModel):
    success: bool
    queueToken: str
    status: Literal["waiting", "admitted", "expired"]
    position: int | None
    ahead: int | None
    opensAt: str
    statusUrl: str


class QueueStatus(BaseModel):
    success: bool
    eventId: str
    status: Literal["waiting", "admitted", "expired"]
    position: int | None
    ahead: int | None
    servingPosition: int
    estimatedWaitSeconds: int | None
    accessToken: str | None
    admittedUntil: str | None
    opensAt: str


class NewEvent(Strict):
    """A seat map is rows × seats per row (`rows`), or every seat named (`seats`)."""

    event_id: EventId = Field(alias="eventId", examples=["summer_gala"])
    name: Text
    venue: NewVenue
    starts_at: str = Field(alias="startsAt", examples=["2027-08-01T19:30:00Z"])
    currency: CurrencyCode = "USD"
    price_categories: list[NewPriceCategory] = Field(alias="priceCategories", min_length=1, max_length=50)
    rows: list[NewRow] = Field(default_factory=list, max_length=1000)
    seats: list[NewSeat] = Field(default_factory=list, max_length=100_000)
    best_order: list[SeatId] = Field(
        default_factory=list, alias="bestOrder", max_length=100_000, examples=[["C", "B", "A"]],
        description="Rows (by label) or seats (by id), best first, for best available; the seats not named "
                    "follow in the map's order")
    on_sale: NewOnSale | None = Field(None, alias="onSale")
    hold_seconds: int | None = Field(
        None, alias="holdSeconds", ge=MIN_HOLD_SECONDS, le=MAX_HOLD_SECONDS, examples=[300],
        description="How long a hold of its seats lasts before it is released, in seconds; unset: the platform's "
                    "BOXOFFICE_HOLD_SECONDS")


def _examples(**named: dict[str, Any]) -> dict[str, Any]:
    """Request bodies for the API docs, each one that works on `up`'s demo events as it is (Try it out sends the
    first): the fields' own examples alone would make a body of every field at once."""
    return {summary.replace("_", " "): {"summary": summary.replace("_", " "), "value": value}
            for summary, value in named.items()}


HOLD_EXAMPLES = _examples(
    pick_seats={"eventId": "taylor_swift_concert", "seatIds": ["B1", "B2"], "userId": "user_1"},
    best_available={"eventId": "taylor_swift_concert", "quantity": 2, "userId": "user_2",
                    "email": "fan@example.com"},
    best_available_in_a_category={"eventId": "taylor_swift_concert", "quantity": 2, "categoryId": "floor",
                                  "userId": "user_3"},
)
EVENT_EXAMPLES = _examples(
    rows_of_seats={
        "eventId": "summer_gala", "name": "Summer Gala", "venue": {"name": "Town Hall", "city": "Leeds"},
        "startsAt": "2027-08-01T19:30:00Z", "currency": "USD",
        "priceCategories": [{"categoryId": "front", "name": "Front", "price": 80.0},
                            {"categoryId": "back", "name": "Back", "price": 40.0}],
        "rows": [{"row": "A", "seats": 12, "section": "Stalls", "categoryId": "front"},
                 {"row": "B", "seats": 12, "section": "Stalls", "categoryId": "back"}]},
    behind_a_waiting_room={
        "eventId": "autumn_tour", "name": "Autumn Tour", "venue": {"name": "Arena", "city": "Glasgow"},
        "startsAt": "2027-10-01T19:30:00Z",
        "priceCategories": [{"categoryId": "std", "name": "Standard", "price": 55.0}],
        "rows": [{"row": r, "seats": 20, "categoryId": "std"} for r in "ABCD"],
        "onSale": {"opensAt": "2027-06-01T09:00:00Z", "waitingRoom": True, "admitPerMinute": 600,
                   "admissionMinutes": 10}},
)
WAITLIST_EXAMPLES = _examples(two_seats_together={"quantity": 2, "userId": "user_1", "email": "fan@example.com"})
QUEUE_EXAMPLES = _examples(a_visitor={"visitorId": "fan_1"})
ON_SALE_EXAMPLES = _examples(
    open_behind_a_waiting_room={"opensAt": "2027-06-01T09:00:00Z", "waitingRoom": True, "admitPerMinute": 600,
                                "admissionMinutes": 10},
    change_the_rate_mid_sale={"admitPerMinute": 1200},
)
