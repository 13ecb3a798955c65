"""Numbers at the API: NaN and the infinities, which Python's JSON reader takes, are refused with a 422 that says
the number must be finite, before anything reaches Kafka or PostgreSQL."""

from __future__ import annotations

import orjson
import pytest
from starlette.testclient import TestClient

from boxoffice.config import Settings
from boxoffice.entrypoints.gateway.app import create_app
from tests.unit.test_api_text import EVENT, NothingBehind

BOOKING = "0b5e4c1e-5f0a-4e7b-9a55-2d7c1f7a9e01"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app(Settings())
    app.state.gateway = NothingBehind()
    return TestClient(app)  # no lifespan: nothing is started


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_an_amount_that_is_not_a_finite_number_is_refused_as_such(client: TestClient, number: str) -> None:
    # Found from outside: NaN was refused as "amount: Input should be less than 1000000".
    raw = b'{"paymentId": "p1", "amount": ' + number.encode() + b"}"
    answer = client.put(f"/bookings/{BOOKING}/confirm", content=raw, headers=JSON)
    assert answer.status_code == 422 and answer.json()["code"] == "validation_error", answer.text
    assert answer.json()["error"] == "amount: Input should be a finite number", answer.text
    assert answer.json()["details"] == [{"field": "amount", "message": "amount: Input should be a finite number"}]


@pytest.mark.parametrize("number", ["NaN", "Infinity"])
def test_a_price_that_is_not_a_finite_number_is_refused_as_such(client: TestClient, number: str) -> None:
    raw = orjson.dumps({**EVENT, "priceCategories": [{"categoryId": "front", "name": "Front", "price": 0}]})
    raw = raw.replace(b'"price":0', b'"price":' + number.encode())
    answer = client.post("/events", content=raw, headers=JSON)
    assert answer.status_code == 422 and answer.json()["code"] == "validation_error", answer.text
    assert answer.json()["error"] == "priceCategories.0.price: Input should be a finite number", answer.text
