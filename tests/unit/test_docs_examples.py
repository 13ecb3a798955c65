"""The API docs' request examples (what Try it out sends) are bodies the routes take: each validates against its
route's model, and a hold asks for picked seats or best available, never both."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from boxoffice.config import Settings
from boxoffice.entrypoints.gateway.app import create_app
from boxoffice.entrypoints.gateway.schemas import BookingRequest, NewEvent, OnSaleChange, QueueJoin, WaitlistJoin

ROUTES: dict[tuple[str, str], type[BaseModel]] = {
    ("post", "/bookings"): BookingRequest,
    ("post", "/events"): NewEvent,
    ("post", "/events/{event_id}/waitlist"): WaitlistJoin,
    ("post", "/events/{event_id}/queue"): QueueJoin,
    ("put", "/events/{event_id}/onsale"): OnSaleChange,
}


def examples_of(method: str, path: str) -> dict[str, Any]:
    schema = create_app(Settings()).openapi()
    return schema["paths"][path][method]["requestBody"]["content"]["application/json"]["examples"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("method", "path"), list(ROUTES), ids=[" ".join(r) for r in ROUTES])
def test_every_example_is_a_body_its_route_takes(method: str, path: str) -> None:
    examples = examples_of(method, path)
    assert examples
    for example in examples.values():
        ROUTES[method, path].model_validate(example["value"])


def test_a_hold_example_asks_for_picked_seats_or_best_available_not_both() -> None:
    for example in examples_of("post", "/bookings").values():
        body = BookingRequest.model_validate(example["value"])
        assert (body.seat_ids is None) != (body.quantity is None), example


def test_an_event_example_gives_its_map_one_way_with_its_own_categories() -> None:
    for example in examples_of("post", "/events").values():
        event = NewEvent.model_validate(example["value"])
        assert bool(event.rows) != bool(event.seats)
        assert {r.category_id for r in event.rows} <= {c.category_id for c in event.price_categories}
