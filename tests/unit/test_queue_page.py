"""The waiting room's page and the dashboard at the gateway: an unknown event's page answers 404, like its API, and
is still the page (its script says so and leads to the events), under the same policy and headers as every page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from starlette.testclient import TestClient

from boxoffice.config import Settings
from tests.unit.test_waiting_room_gateway import EVENT, Database, client_for, room_row

PLAIN_EVENT = "plain_sale"  # an event without a waiting room


class Seats:
    def __init__(self, away: bool = False) -> None:
        self.away = away

    async def seats_of(self, event_id: str) -> frozenset[str] | None:
        if self.away:
            raise asyncpg.CannotConnectNowError("the database is starting up")
        return frozenset({"A1", "A2"}) if event_id in (EVENT, PLAIN_EVENT) else None


def page_client(away: bool = False) -> TestClient:
    http = client_for(Settings(), Database(room_row(datetime.now(UTC) + timedelta(hours=1), opened=False)))
    http.app.state.gateway.seats = Seats(away)  # type: ignore[attr-defined]
    return http


def page_headers(answer: Any) -> dict[str, str]:
    return {name: answer.headers[name] for name in ("content-type", "content-security-policy", "cache-control",
                                                    "x-frame-options", "x-content-type-options")}


@pytest.mark.parametrize(("event_id", "status"), [(EVENT, 200), (PLAIN_EVENT, 200), ("no_such_event", 404)])
def test_the_page_answers_404_for_an_unknown_event_only(event_id: str, status: int) -> None:
    http = page_client()
    page = http.get(f"/events/{event_id}/queue")
    assert page.status_code == status
    assert '<p id="queue-elsewhere" hidden>' in page.text  # the page itself, which leads elsewhere
    assert page_headers(page) == page_headers(http.get(f"/events/{EVENT}/queue"))
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert http.head(f"/events/{event_id}/queue").status_code == status


def test_the_page_is_served_when_whether_the_event_exists_cannot_be_read() -> None:
    page = page_client(away=True).get("/events/no_such_event/queue")
    assert page.status_code == 200 and '<p id="queue-elsewhere" hidden>' in page.text  # its script asks again


@pytest.mark.parametrize(("event_id", "status"), [(EVENT, 200), (PLAIN_EVENT, 200), ("no_such_event", 404)])
def test_the_dashboard_answers_404_for_an_unknown_event_only(event_id: str, status: int) -> None:
    http = page_client()
    page = http.get(f"/events/{event_id}/dashboard")
    assert page.status_code == status
    assert 'src="/static/dashboard.js"' in page.text  # the page itself: its script says the event does not exist
    assert page_headers(page) == page_headers(http.get(f"/events/{EVENT}/dashboard"))
    assert page_client(away=True).get(f"/events/{event_id}/dashboard").status_code == 200
