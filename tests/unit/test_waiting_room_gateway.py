"""The waiting room at the gateway (CONTRACT §8.1), over an in-memory read model: an on-sale's opening read back
is one the organiser can send again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
from starlette.testclient import TestClient

from boxoffice import messages as topics
from boxoffice.adapters.accounts import TokenSigner, TokenStanding
from boxoffice.adapters.queue_tokens import QueueTokens
from boxoffice.config import Settings
from boxoffice.entrypoints.gateway.access import Access
from boxoffice.entrypoints.gateway.app import create_app
from boxoffice.entrypoints.gateway.queue_watch import QueueWatch
from boxoffice.entrypoints.gateway.replies import UnansweredRequests
from boxoffice.entrypoints.gateway.request_ids import RequestIds
from boxoffice.messages import Message

EVENT = "eras_like"
KEY = "k" * 32
ROOM_ID = "room"  # the fake database's one waiting room is EVENT's


@dataclass
class Database:
    """The rows views.waiting_room and views.queue_place read: one room, visitors by queue token."""

    room: dict[str, Any]
    places: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def fetchrow(self, query: str, event_id: str, *args: Any) -> dict[str, Any] | None:
        if event_id != EVENT:
            return None
        if "FROM waiting_rooms" in query:
            return dict(self.room)
        if "FROM queue_visitors" in query:
            return self.places.get(args[0])
        raise AssertionError(f"unexpected query {query}")


def room_row(opens_at: datetime, opened: bool, admission_minutes: int = 10) -> dict[str, Any]:
    return {"event_id": EVENT, "enabled": True, "opens_at": opens_at, "admit_per_minute": 60,
            "admission_minutes": admission_minutes, "opened_at": opens_at if opened else None, "joined": 1,
            "last_position": 1, "serving_position": 1, "pre_queue_size": 1, "shuffle_digest": "0" * 64,
            "last_minute": 0}


@dataclass
class WaitingRoomService:
    """Applies on-sale changes to the room's row at once (the opening no longer moves once open)."""

    database: Database
    published: list[Message] = field(default_factory=list)

    async def publish(self, topic: str, command: Message) -> None:
        self.published.append(command)
        if topic == topics.ONSALE_CHANGE_REQUESTED:
            row = self.database.room
            if row["opened_at"] is None:
                row["opens_at"] = datetime.fromisoformat(command.data["opensAt"])
            row["admit_per_minute"] = command.data["admitPerMinute"]
            row["admission_minutes"] = command.data["admissionMinutes"]


class Seats:
    async def seats_of(self, event_id: str) -> frozenset[str] | None:
        return frozenset({"A1", "A2"}) if event_id == EVENT else None


class Accounts:
    async def token_standing(self, token: Any) -> TokenStanding:
        return TokenStanding(0, False, True)


class Gateway:
    """What the waiting room's routes and POST /bookings' admission use of the gateway."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings, self.pool = settings, database
        self.queue = QueueWatch(cast(asyncpg.Pool, database), QueueTokens(KEY))
        self.publisher = WaitingRoomService(database)
        self.request_ids = RequestIds("ab" * 16)
        self.replies = self
        self.unanswered = UnansweredRequests(0.0)
        self.seats = Seats()
        self.access = Access(settings, Accounts(), TokenSigner(KEY, 3600))  # type: ignore[arg-type]
        self.health = self
        self.refreshed_at, self.outage = 1.0, self
        self.ongoing = False

    def is_up(self, service: str) -> bool:
        return True


def client_for(settings: Settings, database: Database) -> TestClient:
    app = create_app(settings)
    app.state.gateway = Gateway(settings, database)
    return TestClient(app, raise_server_exceptions=False)  # no lifespan: nothing real is started


def test_an_open_rooms_rate_changes_with_the_opening_as_read_back_even_when_stored_finer() -> None:
    # Stored with microseconds, as `up` stored the demo's opening (a minute after `up`) before openings were kept
    # at the precision the API shows.
    opens_at = datetime.now(UTC).replace(microsecond=123456) - timedelta(minutes=5)
    database = Database(room_row(opens_at, opened=True))
    http = client_for(Settings(), database)
    shown = http.get(f"/events/{EVENT}/queue/" + "A" * 43)  # the room is read; no such place
    assert shown.status_code == 404
    on_sale = {"opensAt": opens_at.isoformat(timespec="milliseconds"), "waitingRoom": True, "admitPerMinute": 100,
               "admissionMinutes": 10}
    changed = http.put(f"/events/{EVENT}/onsale", json=on_sale)
    assert changed.status_code == 200, changed.text
    assert changed.json()["admitPerMinute"] == 100 and database.room["admit_per_minute"] == 100
    assert changed.json()["opensAt"] == opens_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    moved = http.put(f"/events/{EVENT}/onsale", json={**on_sale, "opensAt": (opens_at + timedelta(seconds=1))
                                                      .isoformat()})
    assert moved.status_code == 409 and moved.json()["code"] == "sale_open", moved.text
