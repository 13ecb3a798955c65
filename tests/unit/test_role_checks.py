"""The organisers' and admins' calls with accounts on: a caller without the role is refused 403 (and one without a
token 401) whatever the body, before the body is validated, so that a buyer learns nothing of what the call takes;
a caller with the role still gets the body's faults."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from boxoffice.adapters.accounts import TokenSigner, TokenStanding
from boxoffice.config import Settings
from boxoffice.domain.accounts import Principal, Role
from boxoffice.entrypoints.gateway.access import Access
from boxoffice.entrypoints.gateway.app import create_app

KEY = "k" * 32
EVENT = "gala"
TICKET = "boxoffice:ticket:2:" + "A" * 40


class Accounts:
    async def token_standing(self, token: Any) -> TokenStanding:
        return TokenStanding(0, False, True)


class Untouched:
    """What a refused call must never reach: the database, the broker, the seats."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a refused call used the gateway's {name}")


class Gateway(Untouched):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.access = Access(settings, Accounts(), TokenSigner(KEY, 3600))  # type: ignore[arg-type]


@pytest.fixture
def http() -> TestClient:
    settings = Settings(auth="on")
    app = create_app(settings)
    app.state.gateway = Gateway(settings)
    return TestClient(app, raise_server_exceptions=False)  # no lifespan: nothing real is started


def bearer(role: Role) -> dict[str, str]:
    token = TokenSigner(KEY, 3600).issue(Principal(f"{role}_1", f"{role}@x.test", role))
    return {"Authorization": f"Bearer {token}"}


GOOD_EVENT = {"eventId": "new_gala", "name": "Gala", "venue": {"name": "Hall"}, "startsAt": "2030-05-01T19:00:00Z",
              "priceCategories": [{"categoryId": "std", "name": "Standard", "price": 20}],
              "rows": [{"row": "A", "categoryId": "std", "seats": 4}]}
# (method, path, a body the call takes, bodies it does not take, the roles it is refused to)
CALLS = [
    pytest.param("POST", "/events", GOOD_EVENT, [{}, {"bogus": 5}, {**GOOD_EVENT, "rows": "A"}], [Role.BUYER],
                 id="create-event"),
    pytest.param("PUT", f"/events/{EVENT}/onsale", {"admitPerMinute": 100},
                 [{"bogus": 5}, {"admitPerMinute": "fast"}, []], [Role.BUYER], id="change-on-sale"),
    pytest.param("POST", f"/events/{EVENT}/cancel", None, [{"bogus": 5}, []], [Role.BUYER], id="cancel-event"),
    pytest.param("POST", "/tickets/verify", {"ticket": TICKET}, [{}, {"ticket": 5}], [Role.BUYER],
                 id="verify-ticket"),
    pytest.param("PUT", "/users/someone/role", {"role": "organiser"}, [{}, {"role": "emperor"}],
                 [Role.BUYER, Role.ORGANISER], id="grant-role"),
]


@pytest.mark.parametrize(("method", "path", "good", "bad", "refused"), CALLS)
def test_a_caller_without_the_role_is_refused_whatever_the_body(
        http: TestClient, method: str, path: str, good: Any, bad: list[Any], refused: list[Role]) -> None:
    for role in refused:
        for body in [good, *bad]:
            answer = http.request(method, path, json=body, headers=bearer(role))
            assert answer.status_code == 403, (role, body, answer.text)
            assert answer.json()["success"] is False and answer.json()["code"] == "forbidden", answer.text
            assert set(answer.json()) == {"success", "error", "code"}, answer.text
    for body in [good, *bad]:
        anonymous = http.request(method, path, json=body)
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated", anonymous.text


@pytest.mark.parametrize(("method", "path", "good", "bad", "refused"), CALLS)
def test_a_caller_with_the_role_is_told_what_is_wrong_with_the_body(
        http: TestClient, method: str, path: str, good: Any, bad: list[Any], refused: list[Role]) -> None:
    for body in bad:
        answer = http.request(method, path, json=body, headers=bearer(Role.ADMIN))
        assert answer.status_code == 422 and answer.json()["code"] == "validation_error", (body, answer.text)
