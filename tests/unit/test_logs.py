"""JSON log lines, and the request ids they carry from the context of the message or request being handled."""

from __future__ import annotations

import asyncio
import io
import logging
import sys

import orjson
import pytest

from boxoffice import logs
from boxoffice.logs import CORRELATION_ID, REQUEST_ID, JsonFormatter


@pytest.fixture
def captured():
    """A logger writing JSON lines into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter("booking"))
    logger = logging.getLogger("tests.json_lines")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, lambda: [orjson.loads(line) for line in buffer.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_a_line_has_the_fields_and_no_ids_outside_a_request(captured) -> None:
    logger, lines = captured
    logger.info("booking %s confirmed", "b-1")

    (line,) = lines()
    assert line["message"] == "booking b-1 confirmed"
    assert line["level"] == "INFO" and line["service"] == "booking" and line["logger"] == "tests.json_lines"
    assert isinstance(line["pid"], int) and line["time"].endswith("Z") and "T" in line["time"]
    assert "requestId" not in line and "correlationId" not in line


async def test_ids_come_from_the_context_of_each_concurrent_handler(captured) -> None:
    logger, lines = captured

    async def handle(request_id: str) -> None:
        REQUEST_ID.set(request_id)
        await asyncio.sleep(0)
        logger.warning("handling")

    CORRELATION_ID.set("corr-1")
    try:
        await asyncio.gather(handle("req_a"), handle("req_b"))
        logger.info("explicit", extra={"requestId": "req_c", "bookingId": "b-9"})
    finally:
        CORRELATION_ID.set(None)

    first, second, explicit = lines()
    assert {first["requestId"], second["requestId"]} == {"req_a", "req_b"}
    assert first["correlationId"] == second["correlationId"] == "corr-1"
    assert explicit["requestId"] == "req_c" and explicit["bookingId"] == "b-9"
    assert REQUEST_ID.get() is None  # the handlers' tasks did not leak their ids


def test_exceptions_and_odd_values_stay_one_valid_line(captured) -> None:
    logger, lines = captured
    try:
        raise ValueError("quote \" and\nnewline")
    except ValueError:
        logger.exception("failed", extra={"thing": object()})

    (line,) = lines()
    assert line["level"] == "ERROR" and "ValueError: quote" in line["exception"]
    assert line["thing"].startswith("<object object")


def test_a_request_id_with_unicode_line_separators_stays_one_line(captured) -> None:
    # Found from outside: a requestId from a message on a topic carried U+2028 raw into the JSON line, which a
    # reader splitting as str.splitlines does took for two.
    logger, lines = captured
    token = REQUEST_ID.set("req\u2028id\u2029end")
    try:
        logger.warning("odd \u2028 message")
    finally:
        REQUEST_ID.reset(token)
    (line,) = lines()
    assert line["requestId"] == "req\u2028id\u2029end" and line["message"] == "odd \u2028 message"


def test_configure_switches_the_root_format() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure("payment", "json")
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        logs.configure("payment", "text")
        assert "payment[%(process)d]" in root.handlers[0].formatter._fmt  # noqa: SLF001
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_the_log_level_setting_reaches_the_root_logger():
    import logging

    from boxoffice.config import Settings
    from boxoffice.entrypoints.service import configure_logging

    settings = Settings(log_level="debug")
    assert settings.log_level == "DEBUG"
    try:
        configure_logging("booking", "json", settings.log_level)
        assert logging.getLogger().level == logging.DEBUG
        configure_logging("booking", "text", "WARNING")
        assert logging.getLogger().level == logging.WARNING
    finally:
        configure_logging("booking", "text", "INFO")


def test_a_text_line_cannot_be_split_by_what_it_quotes() -> None:
    """A decoded URL path or a mail server's reply may hold line breaks; a traceback keeps its own lines."""
    formatter = logs.TextFormatter(logs.text_format("gateway"))
    record = logging.makeLogRecord({"msg": "unhandled error on GET %s", "args": ("/a\nFAKE b\u2028c\x85d\x00",),
                                    "levelname": "ERROR", "name": "x"})
    (line,) = formatter.format(record).splitlines()
    assert line.endswith("unhandled error on GET /a\\nFAKE b\\u2028c\\x85d\\x00")
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    first, *traceback = formatter.format(record).splitlines()
    assert first == line and traceback[0] == "Traceback (most recent call last):"


def test_an_outage_logs_one_line_when_it_starts_and_one_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    logger = logging.getLogger("tests.outage")
    outage = logs.Outage(logger, "writing the heartbeat", clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="tests.outage")

    assert outage.recovered() is None  # no outage: nothing to say
    assert outage.failed(ConnectionRefusedError("refused")) is True
    for _ in range(20):  # the retries in between are quiet
        now[0] += 0.5
        assert outage.failed(OSError("still down")) is False
    assert outage.ongoing
    now[0] += 0.25
    assert outage.recovered() == pytest.approx(10.25)
    assert outage.recovered() is None and not outage.ongoing

    start, end = caplog.records
    assert start.levelno == end.levelno == logging.WARNING
    assert start.getMessage() == "writing the heartbeat failed (ConnectionRefusedError('refused')); retrying"
    assert end.getMessage() == "writing the heartbeat works again after 10.2 s (21 failed attempts)"
    assert start.outage == end.outage == "writing the heartbeat" and end.outageSeconds == 10.25
    assert not start.exc_info  # no traceback per outage, let alone per retry

    caplog.clear()
    outage.failed(TimeoutError())  # a second outage is a new start line
    assert [r.getMessage() for r in caplog.records] == ["writing the heartbeat failed (TimeoutError()); retrying"]


def test_the_quiet_retries_are_debug_lines(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.outage_debug")
    outage = logs.Outage(logger, "sweeping the outbox")
    caplog.set_level(logging.DEBUG, logger="tests.outage_debug")
    outage.failed(OSError("a"))
    outage.failed(OSError("b"))
    outage.recovered()
    assert [r.levelname for r in caplog.records] == ["WARNING", "DEBUG", "WARNING"]
    assert caplog.records[1].getMessage() == "sweeping the outbox failed again (OSError('b'))"


def test_asyncpg_pool_floor_retries_are_debug_lines_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    pool_log = logging.getLogger("asyncpg.pool")
    pool_log.addFilter(logs.quiet_pool_floor_retries)
    try:
        caplog.set_level(logging.INFO)
        for _ in range(3):
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except ConnectionRefusedError:
                pool_log.warning("Failed to restore the pool connection floor; retrying", exc_info=True)
        pool_log.warning("something else from the pool")
        assert [r.getMessage() for r in caplog.records if r.name == "asyncpg.pool"] == [
            "something else from the pool"]

        caplog.clear()
        caplog.set_level(logging.DEBUG)
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError:
            pool_log.warning("Failed to restore the pool connection floor; retrying", exc_info=True)
        (record,) = [r for r in caplog.records if r.name == "asyncpg.pool"]
        assert record.levelname == "DEBUG" and not record.exc_info
        assert record.getMessage() == ("Failed to restore the pool connection floor; retrying "
                                       "(ConnectionRefusedError(111, 'Connection refused'))")
    finally:
        pool_log.removeFilter(logs.quiet_pool_floor_retries)


def test_kafka_client_retry_lines_are_debug_and_its_other_errors_stay(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(logs.quiet_kafka_client_retries)
    try:
        logging.getLogger("aiokafka").error("Unable connect to node with id %s: %s", 111, "refused")
        logging.getLogger("aiokafka.consumer.fetcher").error("Failed fetch messages from %s: %s", 111, "closed")
        logging.getLogger("aiokafka.producer.sender").warning("Got error produce response: %s", "NodeNotReady")
        logging.getLogger("aiokafka.consumer.fetcher").error("Unexpected error in fetcher routine")
        logging.getLogger("boxoffice.tests").error("Unable connect to our own thing")
        shown = [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.levelno > logging.DEBUG]
        assert shown == [("aiokafka.consumer.fetcher", "ERROR", "Unexpected error in fetcher routine"),
                         ("boxoffice.tests", "ERROR", "Unable connect to our own thing")]
    finally:
        caplog.handler.removeFilter(logs.quiet_kafka_client_retries)


def test_the_line_for_each_request_that_is_not_http_is_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(logs.quiet_unparseable_requests)
    try:
        logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
        logging.getLogger("uvicorn.error").error("Exception in ASGI application")
        shown = [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.levelno > logging.DEBUG]
        assert shown == [("uvicorn.error", "ERROR", "Exception in ASGI application")]
    finally:
        caplog.handler.removeFilter(logs.quiet_unparseable_requests)
