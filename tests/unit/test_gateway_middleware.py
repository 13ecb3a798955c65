"""Gateway middleware without the platform: CORS when configured, headers, body limits."""

from __future__ import annotations

from starlette.testclient import TestClient

from boxoffice.config import Settings
from boxoffice.entrypoints.gateway.app import create_app


def test_cors_preflight_allows_only_configured_origins():
    client = TestClient(create_app(Settings(cors_origins="https://tickets.example, https://b.example")))
    allowed = client.options("/bookings", headers={"Origin": "https://tickets.example",
                                                   "Access-Control-Request-Method": "POST",
                                                   "Access-Control-Request-Headers": "Authorization"})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://tickets.example"
    refused = client.options("/bookings", headers={"Origin": "https://evil.example",
                                                   "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_every_answer_has_the_security_headers_even_errors():
    client = TestClient(create_app(Settings()))
    missing = client.get("/no/such/thing")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert missing.headers["X-Content-Type-Options"] == "nosniff"
    assert missing.headers["Referrer-Policy"] == "no-referrer"


def test_a_declared_length_over_the_limit_is_refused_unread():
    client = TestClient(create_app(Settings()))
    answer = client.post("/bookings", content=b"{}", headers={"Content-Length": str(10**6),
                                                                "Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["code"] == "payload_too_large"


def test_a_body_in_a_content_coding_is_refused_415_unread_and_identity_is_read() -> None:
    import gzip

    import orjson

    client = TestClient(create_app(Settings()), raise_server_exceptions=False)
    hold = orjson.dumps({"eventId": "ev_1", "userId": "fan_1", "seatIds": ["A1"]})
    for coding, content in [("gzip", gzip.compress(hold)), ("GZIP", gzip.compress(hold)), ("br", b"\x0b\x02"),
                            ("gzip, identity", gzip.compress(hold))]:
        for method, path in [("POST", "/bookings"), ("PUT", "/bookings/00000000-0000-0000-0000-000000000001/confirm"),
                             ("POST", "/events")]:
            answer = client.request(method, path, content=content,
                                    headers={"Content-Type": "application/json", "Content-Encoding": coding})
            assert answer.status_code == 415, (coding, method, path, answer.text)
            assert answer.json()["code"] == "unsupported_content_encoding"
            assert answer.headers["Accept-Encoding"] == "identity"
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
    plain = client.post("/events/nope/queue", content=b'{"visitorId": "v1"}',
                        headers={"Content-Type": "application/json", "Content-Encoding": "identity"})
    assert plain.status_code != 415
    assert client.get("/health", headers={"Content-Encoding": "gzip"}).status_code != 415


def test_a_body_declared_as_anything_but_json_is_refused_415_unread() -> None:
    client = TestClient(create_app(Settings()), raise_server_exceptions=False)
    hold = b'{"eventId": "ev_1", "userId": "fan_1", "seatIds": ["A1"]}'
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/xml",
                         "multipart/form-data; boundary=x", "TEXT/PLAIN; charset=utf-8"]:
        for method, path in [("POST", "/bookings"), ("PUT", "/bookings/00000000-0000-0000-0000-000000000001/confirm"),
                             ("POST", "/events"), ("POST", "/events/ev_1/cancel"), ("POST", "/auth/register")]:
            answer = client.request(method, path, content=hold, headers={"Content-Type": content_type})
            assert answer.status_code == 415, (content_type, method, path, answer.text)
            assert answer.json()["code"] == "unsupported_media_type"
            assert "application/json" in answer.json()["error"]
    # JSON in any of its spellings, and a body without a Content-Type, go on to the route (no platform here).
    for headers in [{"Content-Type": "application/json; charset=utf-8"}, {"Content-Type": "application/merge+json"},
                    {}]:
        answer = client.post("/bookings", content=b'{"eventId": "ev_1"}', headers=headers)
        assert answer.status_code != 415, (headers, answer.text)
    # The token route reads its form; an empty body of any type is no body.
    token = client.post("/auth/token", data={"username": "a@b.example", "password": "x"})
    assert token.status_code != 415, token.text
    empty = client.post("/events/ev_1/cancel", content=b"", headers={"Content-Type": "text/plain"})
    assert empty.status_code != 415, empty.text
