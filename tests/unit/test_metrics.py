"""In-process counters, their heartbeat snapshot, and GET /metrics' rendering of every instance."""

from __future__ import annotations

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import PlainTextResponse, StreamingResponse

from boxoffice import metrics
from boxoffice.entrypoints.gateway.telemetry import HeartbeatCollector, RequestTelemetry
from boxoffice.logs import CORRELATION_ID


@pytest.fixture(autouse=True)
def fresh_counters():
    """The families are process-wide: each test starts from zero and leaves them as they were."""
    saved = {name: dict(family.values) for name, family in metrics.FAMILIES.items()}
    for family in metrics.FAMILIES.values():
        family.values.clear()
    yield
    for name, family in metrics.FAMILIES.items():
        family.values.clear()
        family.values.update(saved[name])


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def render(instances: list[dict], own: str = "gw:1") -> str:
    return generate_latest(HeartbeatCollector(instances, None, own, stale_after=5.0)).decode()


def instance(service: str, name: str, snapshot: dict, age: float = 0.5, **info: object) -> dict:
    # Through JSON, as the heartbeat row stores it.
    return {"service": service, "instance": name, "startedAt": 1_800_000_000.0, "age": age,
            "info": orjson.loads(orjson.dumps({**info, "metrics": snapshot}))}


def test_counters_and_histograms_snapshot_through_json() -> None:
    metrics.HOLDS_GRANTED.inc()
    metrics.HOLDS_GRANTED.inc(by=2)
    metrics.HOLDS_REFUSED.inc("seat_unavailable")
    metrics.HTTP_DURATION.observe(0.004, "POST", "/bookings")
    metrics.HTTP_DURATION.observe(0.3, "POST", "/bookings")
    metrics.HTTP_DURATION.observe(60, "POST", "/bookings")

    snap = orjson.loads(orjson.dumps(metrics.snapshot()))

    assert snap["boxoffice_holds_granted_total"] == {"labels": [], "samples": [[3]]}
    assert snap["boxoffice_holds_refused_total"] == {"labels": ["reason"], "samples": [["seat_unavailable", 1]]}
    duration = snap["boxoffice_http_request_duration_seconds"]
    *labels, series = duration["samples"][0]
    assert labels == ["POST", "/bookings"]
    assert series[0] == 1 and series[duration["buckets"].index(0.5)] == 1 and series[-2] == 1  # +Inf
    assert series[-1] == pytest.approx(60.304)
    assert "boxoffice_holds_expired_total" not in snap  # nothing counted, nothing sent


def test_every_instance_is_rendered_with_service_and_instance_labels() -> None:
    booking_1 = instance("booking", "host:10", {"boxoffice_holds_granted_total": {"labels": [], "samples": [[7]]},
                                                "boxoffice_holds_refused_total": {
                                                    "labels": ["reason"], "samples": [["seat_unavailable", 2]]}},
                         lag=3)
    booking_2 = instance("booking", "host:11", {"boxoffice_holds_granted_total": {"labels": [], "samples": [[1]]}},
                         lag=0)
    stale = instance("payment", "host:12", {"boxoffice_payments_total": {
        "labels": ["outcome"], "samples": [["succeeded", 4], ["failed", 1]]}}, age=90.0, lag=5)
    metrics.HTTP_REQUESTS.inc("GET", "/events/{event_id}", "200")
    metrics.HTTP_DURATION.observe(0.02, "GET", "/events/{event_id}")

    found = samples(render([booking_1, booking_2, stale]))

    def at(name: str, **labels: str) -> float | None:
        return found.get((name, frozenset(labels.items())))

    assert at("boxoffice_holds_granted_total", service="booking", instance="host:10") == 7
    assert at("boxoffice_holds_granted_total", service="booking", instance="host:11") == 1
    assert at("boxoffice_holds_refused_total", service="booking", instance="host:10", reason="seat_unavailable") == 2
    # A stopped instance's counters stay (flat) until its row is cleaned up; its gauges do not.
    assert at("boxoffice_payments_total", service="payment", instance="host:12", outcome="failed") == 1
    assert at("boxoffice_consumer_lag", service="booking", instance="host:10") == 3
    assert at("boxoffice_consumer_lag", service="payment", instance="host:12") is None
    assert at("boxoffice_heartbeat_age_seconds", service="payment", instance="host:12") == 90.0
    assert at("boxoffice_service_up", service="booking") == 1
    assert at("boxoffice_service_up", service="payment") == 0
    assert at("boxoffice_service_up", service="gateway") == 1
    assert at("boxoffice_service_up", service="notification") == 0  # never beat
    # The gateway's own counters come from this process, labelled with its instance.
    route = {"service": "gateway", "instance": "gw:1", "method": "GET", "route": "/events/{event_id}"}
    assert at("boxoffice_http_requests_total", **route, status="200") == 1
    assert at("boxoffice_http_request_duration_seconds_bucket", **route, le="0.025") == 1
    assert at("boxoffice_http_request_duration_seconds_bucket", **route, le="0.01") == 0
    assert at("boxoffice_http_request_duration_seconds_count", **route) == 1


def test_own_heartbeat_row_is_replaced_by_live_values_and_empty_families_still_described() -> None:
    metrics.HOLDS_EXPIRED.inc(by=4)  # as if this process were counting
    old_row = instance("gateway", "gw:1", {"boxoffice_holds_expired_total": {"labels": [], "samples": [[1]]}})

    text = render([old_row])

    found = samples(text)
    assert found[("boxoffice_holds_expired_total", frozenset({("service", "gateway"), ("instance", "gw:1")}))] == 4
    assert "# TYPE boxoffice_bookings_confirmed_total counter" in text
    assert "# TYPE boxoffice_http_request_duration_seconds histogram" in text


async def test_middleware_labels_by_route_template_and_returns_the_correlation_id() -> None:
    app = FastAPI()
    seen: list[str | None] = []

    @app.get("/bookings/{booking_id}")
    async def one(booking_id: str) -> PlainTextResponse:
        seen.append(CORRELATION_ID.get())
        return PlainTextResponse(booking_id)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks():
            for n in range(3):
                yield f"data: {n}\n\n".encode()
        return StreamingResponse(chunks(), media_type="text/event-stream")

    app.add_middleware(RequestTelemetry)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        given = await client.get("/bookings/b-1", headers={"X-Request-ID": "trace-42"})
        generated = await client.get("/bookings/b-2")
        hostile = await client.get("/bookings/b-3", headers={"X-Request-ID": "a\"b" * 100})
        streamed = await client.get("/stream")
        missing = await client.get("/nothing/here/123")

    assert given.headers["x-request-id"] == "trace-42" and seen[0] == "trace-42"
    assert len(generated.headers["x-request-id"]) == 32 and seen[1] == generated.headers["x-request-id"]
    assert hostile.headers["x-request-id"] != "a\"b" * 100
    assert streamed.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n" and "x-request-id" in streamed.headers
    assert missing.status_code == 404
    assert metrics.HTTP_REQUESTS.values == {
        ("GET", "/bookings/{booking_id}", "200"): 3, ("GET", "/stream", "200"): 1, ("GET", "unmatched", "404"): 1}
    assert sum(metrics.HTTP_DURATION.values[("GET", "/bookings/{booking_id}")][:-1]) == 3
