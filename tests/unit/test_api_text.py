"""Free text at the API: every line break and control character is refused with a 422 that names the field,
before anything reaches Kafka or PostgreSQL (the gateway's state behind the app refuses to be used)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from boxoffice.config import Settings
from boxoffice.domain.text import has_visible, is_mail_address, one_line
from boxoffice.entrypoints.gateway.app import create_app
from boxoffice.entrypoints.gateway.schemas import NewEvent

# Every character str.splitlines breaks on, and the other control characters (C0, DEL, C1).
SEPARATORS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
OTHER_CONTROLS = ["\x00", "\t", "\x1b", "\x7f", "\x9f", "\u202e", "\u2067"]  # with bidirectional overrides
assert all(len(f"a{c}b".splitlines()) == 2 for c in SEPARATORS)

EVENT: dict[str, Any] = {
    "eventId": "summer_gala", "name": "Summer Gala", "venue": {"name": "Town Hall", "city": "Bath"},
    "startsAt": "2027-08-01T19:30:00Z",
    "priceCategories": [{"categoryId": "front", "name": "Front", "price": 80.0}],
    "rows": [{"row": "A", "seats": 10, "section": "Stalls", "categoryId": "front"}],
}
SEAT = {"seatId": "A1", "row": "A", "number": 1, "section": "Stalls", "categoryId": "front"}


class NothingBehind:
    """The gateway's state for requests that are refused at the door: no broker, no database."""

    def __init__(self) -> None:
        self.settings = Settings(auth="off")
        self.access = self

    def limit_ip(self, request: Request) -> None:
        pass

    def limit_user(self, user_id: str) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a request that should be refused used gateway.{name}")


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app(Settings())
    app.state.gateway = NothingBehind()
    return TestClient(app)  # no lifespan: nothing is started


def with_text(path: str, text: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """EVENT (or `body`) with the string at `path` (dotted; list indexes as numbers) made `text`."""
    changed = copy.deepcopy(EVENT if body is None else body)
    *parents, last = path.split(".")
    target: Any = changed
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    target[int(last) if last.isdigit() else last] = text
    return changed


def assert_refused(answer: Any, field: str) -> None:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["success"] is False and body["code"] == "validation_error"
    assert body["error"].startswith(f"{field}: "), body["error"]
    assert [d["field"] for d in body["details"]] == [field]


EVENT_TEXT = ["name", "venue.name", "venue.city", "priceCategories.0.name", "rows.0.section"]


@pytest.mark.parametrize("char", SEPARATORS + OTHER_CONTROLS, ids=repr)
@pytest.mark.parametrize("field", EVENT_TEXT)
def test_a_new_events_text_is_one_line(client: TestClient, field: str, char: str) -> None:
    answer = client.post("/events", json=with_text(field, f"Summer{char}Gala"))
    assert_refused(answer, field)
    assert "line breaks or control characters" in answer.json()["error"]


@pytest.mark.parametrize("char", SEPARATORS, ids=repr)
@pytest.mark.parametrize("where", ["start", "end"])
def test_a_line_break_at_either_end_is_refused_too_not_trimmed(client: TestClient, char: str, where: str) -> None:
    name = f"{char}Summer Gala" if where == "start" else f"Summer Gala{char}"
    assert_refused(client.post("/events", json=with_text("name", name)), "name")


@pytest.mark.parametrize("char", SEPARATORS + OTHER_CONTROLS, ids=repr)
@pytest.mark.parametrize("field", ["seats.0.section", "seats.0.seatId", "seats.0.row", "seats.0.categoryId"])
def test_listed_seats_are_one_line(client: TestClient, field: str, char: str) -> None:
    body = {**EVENT, "rows": [], "seats": [dict(SEAT)]}
    assert_refused(client.post("/events", json=with_text(field, f"A{char}1", body)), field)


@pytest.mark.parametrize("char", SEPARATORS + OTHER_CONTROLS, ids=repr)
@pytest.mark.parametrize("field", ["eventId", "rows.0.row", "rows.0.categoryId", "priceCategories.0.categoryId"])
def test_ids_and_row_labels_are_one_line(client: TestClient, field: str, char: str) -> None:
    assert_refused(client.post("/events", json=with_text(field, f"A{char}1")), field)


BOOKING: dict[str, Any] = {"eventId": "summer_gala", "seatIds": ["A1"], "userId": "user_1",
                           "email": "fan@example.com"}


@pytest.mark.parametrize("char", SEPARATORS + OTHER_CONTROLS, ids=repr)
@pytest.mark.parametrize(("field", "value"), [
    ("email", "fan{}@example.com"), ("email", "fan@example.com{}"), ("userId", "user{}1"), ("userId", "user_1{}"),
    ("seatIds.0", "A{}1"), ("eventId", "summer_gala{}"),
])
def test_a_booking_request_is_one_line(client: TestClient, field: str, value: str, char: str) -> None:
    assert_refused(client.post("/bookings", json=with_text(field, value.format(char), BOOKING)), field)


@pytest.mark.parametrize("char", SEPARATORS + OTHER_CONTROLS, ids=repr)
def test_an_accounts_email_is_one_line(client: TestClient, char: str) -> None:
    answer = client.post("/auth/register", json={"email": f"fan{char}@example.com", "password": "long enough"})
    assert_refused(answer, "email")
    assert "line breaks or control characters" in answer.json()["error"]


@pytest.mark.parametrize("email", [
    "a:b@example.com", "a(b)@example.com", "a[b]@example.com", '"a b"@example.com', "a..b@example.com",
    ".a@example.com", "a@example..com", "=?utf-8?q?x?=@example.com", "no-at-sign", "a@b@example.com",
    # invisible characters: the address would look like another, or a mail server would refuse it later
    "a@example.com\u200b", "a@ex\u200dample.com", "a@example.com\u00ad", "a\u2060@example.com",
    "a@exa\u180emple.com", "a\u034f@example.com", "a@example.com\ue000", "a\U000e0041@example.com",
    "a\ufe0f@example.com",
    # host names: no underscore, no hyphen at either end of a label
    "a@-example.com", "a@example-.com", "a@ex_ample.com", "a@example.-com",
])
def test_only_addresses_mail_goes_to_as_written_are_taken(client: TestClient, email: str) -> None:
    """Groups, comments, quotes and encoded words would make the mail library send elsewhere."""
    assert not is_mail_address(email)
    assert_refused(client.post("/bookings", json={**BOOKING, "email": email}), "email")
    assert_refused(client.post("/auth/register", json={"email": email, "password": "long enough"}), "email")


@pytest.mark.parametrize("email", ["fan@example.com", "a.b+tickets@mail.example.org", "jürgen@exämple.de",
                                   "a_b@x-y.example.org", "a@xn--bcher-kva.example",
                                   "user@\u0939\u093f\u0928\u094d\u0926\u0940.\u092d\u093e\u0930\u0924"])
def test_plain_addresses_are_mail_addresses(email: str) -> None:
    assert is_mail_address(email)


@pytest.mark.parametrize("path", [
    "/events/summer_gala%0A", "/events/summer_gala%0A/seats", "/events/summer_gala%0A/live",
    "/users/user_1%0A/bookings", "/events/summer_gala%E2%80%A8",
])
def test_ids_in_paths_with_a_line_break_are_malformed(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_id", answer.text


def test_surrounding_spaces_are_still_trimmed_and_text_folds_to_one_line() -> None:
    assert one_line("  Summer\r\n\u2028Gala\x85 ") == "Summer Gala"
    assert one_line("x" * 300, limit=10) == "x" * 9 + "…"


def test_the_openapi_schema_says_so_as_a_pattern() -> None:
    schemas = create_app(Settings()).openapi()["components"]["schemas"]
    for model, field in [("NewEvent", "name"), ("NewVenue", "city"), ("NewRow", "section")]:
        assert "\\u2028" in schemas[model]["properties"][field]["pattern"]


def test_a_place_listed_twice_under_two_seat_ids_is_refused(client: TestClient) -> None:
    body = {**EVENT, "rows": [], "seats": [dict(SEAT), {**SEAT, "seatId": "A1b"}]}
    answer = client.post("/events", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_error"
    assert answer.json()["error"] == "seats: each place (row and number) once; listed twice: row A number 1"


@pytest.mark.parametrize("currency", ["ZZZ", "ABC", "usd", "US", "EURO"])
def test_a_currency_that_iso_4217_does_not_list_is_refused(client: TestClient, currency: str) -> None:
    answer = client.post("/events", json={**EVENT, "currency": currency})
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_error" and "currency" in answer.json()["error"], answer.text


@pytest.mark.parametrize("currency", ["USD", "EUR", "GBP", "JPY", "CHF"])
def test_iso_4217_currencies_are_taken(currency: str) -> None:
    assert NewEvent.model_validate({**EVENT, "currency": currency}).currency == currency


def test_numbered_rows_whose_seat_ids_run_together_are_refused_with_why(client: TestClient) -> None:
    """Row 1 seat 11 and row 11 seat 1 would both be 111."""
    rows = [{"row": str(n), "seats": 12, "categoryId": "front"} for n in range(1, 13)]
    answer = client.post("/events", json={**EVENT, "rows": rows})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert "a row label that ends in a digit runs into the seat numbers" in error and "twice: 111, " in error
    lettered = client.post("/events", json={**EVENT, "rows": [EVENT["rows"][0], EVENT["rows"][0]]})
    assert "rows repeated, or seats listed twice" in lettered.json()["error"]


INVISIBLE = ["\u200b", "\ufeff", "\u200f", "\u061c", "\u200b \u200d\u2060", "\u00a0\u200e",
             # drawn as nothing or blank: Hangul fillers, a combining joiner, a variation selector, empty Braille
             "\u3164", "\u115f\u1160", "\uffa0", "\u034f", "\ufe0f", "\u2800 \u2800"]


@pytest.mark.parametrize("text", INVISIBLE, ids=repr)
@pytest.mark.parametrize("field", ["name", "venue.name", "priceCategories.0.name", "rows.0.section"])
def test_a_name_that_would_show_as_nothing_is_refused(client: TestClient, field: str, text: str) -> None:
    answer = client.post("/events", json=with_text(field, text))
    assert_refused(answer, field)
    assert "visible character" in answer.json()["error"]


@pytest.mark.parametrize("text", ["Summer Gala", "\u05e9\u05dc\u05d5\u05dd\u200f Gala", "\U0001f468\u200d\U0001f469",
                                  "\u0645\u06cc\u200c\u0631\u0648\u0645", "Cafe\u0301", "\ud55c\uad6d",
                                  "\u2764\ufe0f", "\u2800x"])
def test_invisible_characters_among_visible_ones_are_kept(text: str) -> None:
    assert has_visible(text)


@pytest.mark.parametrize("raw", [b'{"eventId":"summer_gala","userId":"u\x00"}', b'{"eventId": tru}', b'{"a":1'])
def test_a_body_that_is_not_json_names_the_body_and_where_it_broke(client: TestClient, raw: bytes) -> None:
    answer = client.post("/bookings", content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"].startswith("The request body is not valid JSON (at character ")
    assert [d["field"] for d in body["details"]] == ["body"]
