"""The API fuzzed from its own OpenAPI schema (schemathesis): no 5xx, every answer as documented, and a
rejected request changes nothing. The budget is bounded per operation so CI stays quick."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from boxoffice.config import Settings
from boxoffice.entrypoints.gateway.app import create_app
from tests.platforms import RunningPlatform, start_platform

EXAMPLES_PER_OPERATION = 25
ACCOUNTS_EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]

# Everything a request could change, except the log of decided requests (a 409 is a decision, kept so that a
# retried request gets the same answer).
STATE = """
SELECT (SELECT count(*) FROM events) AS events,
       (SELECT count(*) FROM seats WHERE status <> 'AVAILABLE') AS taken_seats,
       (SELECT coalesce(md5(string_agg(seat_id || status || coalesce(booking_id::text, ''), ','
                                       ORDER BY event_id, seat_id)), '')
        FROM seats WHERE status <> 'AVAILABLE') AS seats,
       (SELECT coalesce(md5(string_agg(booking_id::text || status || coalesce(payment_id, ''), ','
                                       ORDER BY booking_id)), '') FROM bookings) AS bookings,
       (SELECT count(*) FROM accounts) AS accounts,
       (SELECT coalesce(md5(string_agg(user_id || role, ',' ORDER BY user_id)), '') FROM accounts) AS roles
"""


class StateProbe:
    """Reads the platform's PostgreSQL from a synchronous test."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(asyncpg.connect(dsn))

    def read(self) -> dict[str, object]:
        return dict(self.loop.run_until_complete(self.connection.fetchrow(STATE)))

    def close(self) -> None:
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


@pytest.fixture(scope="module")
def fuzzed_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    yield from start_platform(tmp_path_factory.mktemp("fuzz"), BOXOFFICE_PAYMENT_LATENCY_MS="5")


@pytest.fixture(scope="module")
def probe(fuzzed_platform: RunningPlatform) -> Iterator[StateProbe]:
    state = StateProbe(str(fuzzed_platform.runtime["database_url"]))
    yield state
    state.close()


# The schema the gateway serves at /openapi.json, built from the same code without starting it.
# A body over the size limit is refused with 413 whatever else is wrong with it.
FUZZ_CONFIG = {"checks": {"negative_data_rejection": {"expected-statuses": [
    "400", "401", "403", "404", "405", "409", "413", "415", "422", "429"]}}}
open_schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi(),
                                             config=SchemathesisConfig.from_dict(FUZZ_CONFIG))
accounts_schema = schemathesis.openapi.from_dict(create_app(Settings(auth="on")).openapi(),
                                                 config=SchemathesisConfig.from_dict(FUZZ_CONFIG))


def call_and_check(case: schemathesis.Case, platform: RunningPlatform, probe: StateProbe,
                   checks: list, headers: dict[str, str] | None = None) -> None:  # type: ignore[type-arg]
    before = probe.read()
    response = case.call_and_validate(base_url=platform.base_url, checks=checks, headers=headers, timeout=30)
    # 402 is a declined payment: it releases the seats by design.
    if 400 <= response.status_code < 500 and response.status_code != 402:
        assert probe.read() == before, f"{case.method} {case.formatted_path} answered " \
                                       f"{response.status_code} but changed the state"


@open_schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_answers_as_documented(case: schemathesis.Case, fuzzed_platform: RunningPlatform,
                                   probe: StateProbe) -> None:
    call_and_check(case, fuzzed_platform, probe, CHECKS)


@pytest.fixture(scope="module")
def accounts_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """Accounts on; rate limits off so that the fuzzer meets every other answer too."""
    yield from start_platform(tmp_path_factory.mktemp("fuzz_accounts"), BOXOFFICE_AUTH="on",
                              BOXOFFICE_RATE_LIMITS="off", BOXOFFICE_PAYMENT_LATENCY_MS="5")


@pytest.fixture(scope="module")
def accounts_probe(accounts_platform: RunningPlatform) -> Iterator[StateProbe]:
    state = StateProbe(str(accounts_platform.runtime["database_url"]))
    yield state
    state.close()


FUZZING_BUYER = {"email": "fuzzing-buyer@example.com", "password": "fuzzing password"}


def sign_in(platform: RunningPlatform) -> str:
    with httpx.Client(base_url=platform.base_url) as client:
        answer = client.post("/auth/token", data={"username": FUZZING_BUYER["email"],
                                                  "password": FUZZING_BUYER["password"]})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])


@pytest.fixture(scope="module")
def buyer_token(accounts_platform: RunningPlatform) -> dict[str, str]:
    with httpx.Client(base_url=accounts_platform.base_url) as client:
        assert client.post("/auth/register", json=FUZZING_BUYER).status_code == 201
    return {"token": sign_in(accounts_platform)}


@accounts_schema.parametrize()
@settings(max_examples=ACCOUNTS_EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_with_accounts_answers_as_documented(case: schemathesis.Case, accounts_platform: RunningPlatform,
                                                 accounts_probe: StateProbe, buyer_token: dict[str, str]) -> None:
    """As a signed-in buyer: organiser and admin calls are refused (403) and change nothing; a call without
    the token is refused too (ignored_auth)."""
    # Signing out revokes the token it is called with (everywhere=true, all of the account's): those calls get
    # a token of their own and, once done, the buyer a new one for the calls after.
    signing_out = case.path == "/auth/logout"
    token = sign_in(accounts_platform) if signing_out else buyer_token["token"]
    call_and_check(case, accounts_platform, accounts_probe, [*CHECKS, ignored_auth],
                   headers={"Authorization": f"Bearer {token}"})
    if signing_out:
        buyer_token["token"] = sign_in(accounts_platform)
