"""The OpenAPI document lists the answers a route gives: a cancel's 202 (waiting in Kafka) and 502 (a refund the
provider refused) were missing, although the route gives both and its own description names the 502."""

from __future__ import annotations

from boxoffice.config import Settings
from boxoffice.entrypoints.gateway.app import create_app


def test_both_cancel_routes_list_a_queued_cancel_and_a_refused_refund() -> None:
    paths = create_app(Settings()).openapi()["paths"]
    for answers in (paths["/bookings/{booking_id}"]["delete"]["responses"],
                    paths["/bookings/{booking_id}/cancel"]["post"]["responses"]):
        assert {"200", "202", "404", "409", "502"} <= answers.keys(), sorted(answers)
