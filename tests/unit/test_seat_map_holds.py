"""SeatMap.hold: all requested seats or none, decided in order."""

from datetime import UTC, datetime
from decimal import Decimal

from boxoffice.domain import events
from boxoffice.domain.model import Seat, SeatMap, SeatStatus, unavailable_message

EXPIRES = datetime(2027, 6, 21, 18, 0, tzinfo=UTC)
EVENT = "taylor_swift_concert"


def seat_map(**statuses: SeatStatus) -> SeatMap:
    prices = {"A1": Decimal("150.00"), "A2": Decimal("150.00"), "A3": Decimal("150.00"),
              "M1": Decimal("95.00"), "T1": Decimal("55.50")}
    seats = {sid: Seat(sid, statuses.get(sid, SeatStatus.AVAILABLE), price,
                       None if statuses.get(sid, SeatStatus.AVAILABLE) is SeatStatus.AVAILABLE else "bk_old")
             for sid, price in prices.items()}
    return SeatMap(EVENT, "USD", seats)


def hold(m: SeatMap, seat_ids: list[str], n: int = 1):
    return m.hold(f"req_{n}", "user_1", seat_ids, f"bk_{n}", EXPIRES)


def test_successful_hold_reserves_every_seat_and_reports_it():
    m = seat_map()
    outcome = hold(m, ["A1", "A2", "A3"])
    assert outcome == events.SeatsReserved(
        request_id="req_1", event_id=EVENT, user_id="user_1", booking_id="bk_1", seat_ids=["A1", "A2", "A3"],
        amount=Decimal("450.00"), currency="USD", expires_at=EXPIRES,
    )
    for sid in ("A1", "A2", "A3"):
        assert m.seats[sid].status is SeatStatus.RESERVED
        assert m.seats[sid].booking_id == "bk_1"
    assert m.seats["M1"].status is SeatStatus.AVAILABLE


def test_amount_is_the_decimal_sum_of_seat_prices():
    outcome = hold(seat_map(), ["A1", "M1", "T1"])
    assert isinstance(outcome, events.SeatsReserved)
    assert isinstance(outcome.amount, Decimal)
    assert outcome.amount == Decimal("300.50")
    assert outcome.expires_at is EXPIRES


def test_one_taken_seat_holds_none():
    m = seat_map(A2=SeatStatus.RESERVED)
    outcome = hold(m, ["A1", "A2", "A3"])
    assert isinstance(outcome, events.ReservationFailed)
    assert outcome.code == "seat_unavailable"
    assert outcome.seat_ids == ["A2"]
    assert outcome.reason == "Seat A2 is already reserved"
    assert (outcome.request_id, outcome.event_id, outcome.user_id) == ("req_1", EVENT, "user_1")
    assert m.seats["A1"].status is SeatStatus.AVAILABLE and m.seats["A1"].booking_id is None
    assert m.seats["A3"].status is SeatStatus.AVAILABLE and m.seats["A3"].booking_id is None
    assert (m.seats["A2"].status, m.seats["A2"].booking_id) == (SeatStatus.RESERVED, "bk_old")


def test_taken_seats_lists_exactly_the_taken_ones_in_request_order():
    m = seat_map(A3=SeatStatus.BOOKED, A1=SeatStatus.RESERVED)
    outcome = hold(m, ["A3", "A2", "A1", "M1"])
    assert isinstance(outcome, events.ReservationFailed)
    assert outcome.code == "seat_unavailable"
    assert outcome.seat_ids == ["A3", "A1"]
    assert outcome.reason == "Seats A3, A1 are already taken"
    assert m.seats["A2"].status is SeatStatus.AVAILABLE
    assert m.seats["M1"].status is SeatStatus.AVAILABLE


def test_unknown_seats_fail_with_seat_not_found_and_the_missing_ids():
    m = seat_map()
    outcome = hold(m, ["A1", "Z99", "A2", "Q7"])
    assert isinstance(outcome, events.ReservationFailed)
    assert outcome.code == "seat_not_found"
    assert outcome.seat_ids == ["Z99", "Q7"]
    assert "Z99, Q7" in outcome.reason and EVENT in outcome.reason
    assert all(s.status is SeatStatus.AVAILABLE for s in m.seats.values())


def test_unknown_seats_are_reported_before_taken_ones():
    m = seat_map(A1=SeatStatus.BOOKED)
    outcome = hold(m, ["A1", "Z99"])
    assert isinstance(outcome, events.ReservationFailed)
    assert (outcome.code, outcome.seat_ids) == ("seat_not_found", ["Z99"])


def test_decisions_in_order_see_earlier_holds():
    m = seat_map()
    outcomes = [hold(m, ["A1"], n) for n in (1, 2, 3)]
    first, *rest = outcomes
    assert isinstance(first, events.SeatsReserved)
    assert first.booking_id == "bk_1"
    for n, later in zip((2, 3), rest, strict=True):
        assert isinstance(later, events.ReservationFailed)
        assert later.request_id == f"req_{n}"
        assert later.code == "seat_unavailable"
        assert later.seat_ids == ["A1"]
        assert later.reason == "Seat A1 is already reserved"
    assert (m.seats["A1"].status, m.seats["A1"].booking_id) == (SeatStatus.RESERVED, "bk_1")


def test_overlapping_multi_seat_request_after_a_hold_fails_whole():
    m = seat_map()
    assert isinstance(hold(m, ["A1", "A2"], 1), events.SeatsReserved)
    outcome = hold(m, ["A2", "A3"], 2)
    assert isinstance(outcome, events.ReservationFailed)
    assert outcome.seat_ids == ["A2"]
    assert m.seats["A3"].status is SeatStatus.AVAILABLE
    assert m.seats["A2"].booking_id == "bk_1"


def test_unavailable_message_wording():
    def s(sid, status):
        return Seat(sid, status, Decimal("1"), "bk")

    assert unavailable_message([s("A1", SeatStatus.RESERVED)]) == "Seat A1 is already reserved"
    assert unavailable_message([s("A1", SeatStatus.BOOKED)]) == "Seat A1 is already booked"
    assert unavailable_message([s("A1", SeatStatus.RESERVED), s("A2", SeatStatus.RESERVED)]) \
        == "Seats A1, A2 are already reserved"
    assert unavailable_message([s("A1", SeatStatus.BOOKED), s("B2", SeatStatus.BOOKED), s("C3", SeatStatus.BOOKED)]) \
        == "Seats A1, B2, C3 are already booked"
    assert unavailable_message([s("A1", SeatStatus.RESERVED), s("A2", SeatStatus.BOOKED)]) \
        == "Seats A1, A2 are already taken"


def test_requests_that_skipped_the_gateway_checks_are_refused_not_raised() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from boxoffice.domain import events
    from boxoffice.domain.model import Seat, SeatMap, SeatStatus

    seats = {f"A{i}": Seat(f"A{i}", SeatStatus.AVAILABLE, Decimal("10.00")) for i in range(1, 20)}
    seat_map = SeatMap("ev", "USD", seats, per_booking_limit=10)
    when = datetime(2030, 1, 1, tzinfo=UTC)
    too_many = [f"A{i}" for i in range(1, 12)]
    for wanted in (["A1", "A1"], too_many, []):
        outcome = seat_map.hold("r", "u", wanted, "b", when)
        assert isinstance(outcome, events.ReservationFailed) and outcome.code == "invalid_request"
    assert all(seat.status is SeatStatus.AVAILABLE for seat in seats.values())


def test_a_buyer_cannot_hold_more_than_the_per_buyer_limit():
    m = seat_map()
    m.per_user_limit = 3
    m.seats_per_user = {"user_1": 1}  # already holds one seat of this event
    too_many = hold(m, ["A1", "A2", "A3"])
    assert isinstance(too_many, events.ReservationFailed) and too_many.code == "seat_limit_reached"
    assert all(m.seats[s].status is SeatStatus.AVAILABLE for s in ("A1", "A2", "A3"))

    assert isinstance(hold(m, ["A1", "A2"], 2), events.SeatsReserved)
    # The batch's own holds count too.
    assert hold(m, ["A3"], 3).code == "seat_limit_reached"
    other = m.hold("req_4", "user_2", ["A3"], "bk_4", EXPIRES)
    assert isinstance(other, events.SeatsReserved)


def test_no_limit_unless_set():
    m = seat_map()
    m.seats_per_user = {"user_1": 100}
    assert isinstance(hold(m, ["A1", "A2", "A3"]), events.SeatsReserved)


def test_the_per_booking_limit_is_the_one_it_is_given():
    m = seat_map()
    m.per_booking_limit = 2
    refused = hold(m, ["A1", "A2", "A3"])
    assert isinstance(refused, events.ReservationFailed) and refused.code == "invalid_request"
    assert refused.reason == "A booking needs 1 to 2 different seats"
    assert isinstance(hold(m, ["A1", "A2"], 2), events.SeatsReserved)
