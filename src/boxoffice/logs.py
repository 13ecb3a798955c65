"""Log lines as JSON, and the ids that tie the lines of every service about one HTTP request together.

`REQUEST_ID` is the Kafka message's `requestId` while that message is handled (and, in the gateway, once a
request has published its command); `CORRELATION_ID` is the gateway's per-HTTP-request id (`X-Request-ID`).
Setting them costs a context variable write; they are read only when a line is actually written.

`Outage` turns a retry loop's failures into two lines: one when the outage starts, one when it ends.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from boxoffice.domain.text import CONTROL

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is written as a field.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, pid, logger, message, and the ids when known."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service
        self._pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname, "service": self._service, "pid": record.process or self._pid,
            "logger": record.name, "message": record.getMessage(),
        }
        request_id, correlation_id = REQUEST_ID.get(), CORRELATION_ID.get()
        if request_id:
            line["requestId"] = request_id
        if correlation_id:
            line["correlationId"] = correlation_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value  # `extra=` fields; an explicit requestId wins over the context's
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # JSON allows U+2028 and U+2029 raw in a string, but readers that split lines as Python's str.splitlines
        # does would see a record end there: written escaped, as orjson does not.
        return orjson.dumps(line, default=str).decode().replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def text_format(service: str) -> str:
    return f"%(asctime)s {service}[%(process)d] %(levelname)s %(name)s: %(message)s"


_CONTROL = re.compile(f"[{CONTROL}]")


class TextFormatter(logging.Formatter):
    """One record, one line: a line break in the message (a URL path, a mail server's reply) is written
    escaped, as \\n, so that it cannot pass for another record. A traceback still follows on its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), super().formatMessage(record))


def configure(service: str, log_format: str = "text", level: int = logging.INFO) -> None:
    """Replaces the root handler: safe to call again, e.g. in each gateway worker process."""
    handler = logging.StreamHandler()  # stderr, which the supervisor writes to the service's log file
    handler.setFormatter(JsonFormatter(service) if log_format == "json" else TextFormatter(text_format(service)))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("asyncpg.pool").addFilter(quiet_pool_floor_retries)
    handler.addFilter(quiet_kafka_client_retries)
    handler.addFilter(quiet_unparseable_requests)


# What aiokafka logs at each of its retries while the broker is away: ten lines a second per client.
_KAFKA_CLIENT_RETRIES = (
    "Unable connect to", "Unable to update metadata", "Failed fetch messages from", "Failed fetch offsets from",
    "Got error produce response", "Group Coordinator Request failed", "Heartbeat send request failed",
    "FindCoordinator Request failed",
)


def quiet_unparseable_requests(record: logging.LogRecord) -> bool:
    """uvicorn's line for each request its parser refuses becomes DEBUG: anyone can send such bytes as fast as
    they like, and the gateway counts them in boxoffice_http_requests_total (route "refused at the edge")."""
    if record.name != "uvicorn.error" or record.msg != "Invalid HTTP request received.":
        return True
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger().isEnabledFor(logging.DEBUG)


def quiet_kafka_client_retries(record: logging.LogRecord) -> bool:
    """The Kafka client's retry lines become DEBUG: the process's own loops log a broker outage once when it
    starts and once when it ends (Outage), and a consumer stuck on it shows as degraded."""
    if not record.name.startswith("aiokafka") or not str(record.msg).startswith(_KAFKA_CLIENT_RETRIES):
        return True
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger().isEnabledFor(logging.DEBUG)


def quiet_pool_floor_retries(record: logging.LogRecord) -> bool:
    """asyncpg's pool writes a WARNING with a traceback each time it fails to reconnect its idle connections
    (every 1 to 60 s while the database is down). The process's own loops already log the outage (Outage),
    so these become DEBUG lines with the error's repr instead of its traceback."""
    if not str(record.msg).startswith("Failed to restore the pool connection floor"):
        return True
    if record.exc_info and record.exc_info[1] is not None:
        record.msg = f"{record.msg} ({record.exc_info[1]!r})"
    record.exc_info, record.exc_text = None, None
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger().isEnabledFor(logging.DEBUG)


class Outage:
    """A dependency that fails for a while, logged as two lines however many retries it takes.

    The first failure logs one WARNING with the error; the failures after it log at DEBUG only; the first
    success after them logs one WARNING with how long it lasted and how many attempts failed. Use one per
    retrying loop (it is not shared between threads):

        outage = Outage(log, "writing the heartbeat")
        while True:
            try:
                await beat()
            except TRANSIENT_ERRORS as exc:
                outage.failed(exc)
            else:
                outage.recovered()
            await asyncio.sleep(1)

    Both lines carry `outage` (the `what`) and the end line `outageSeconds`, as JSON log fields."""

    def __init__(self, logger: logging.Logger, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._log, self.what, self._clock = logger, what, clock
        self.since: float | None = None  # when the ongoing outage started (clock time), None when there is none
        self.failures = 0

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> bool:
        """Records a failed attempt; True when it started an outage (and was logged)."""
        self.failures += 1
        if self.since is not None:
            self._log.debug("%s failed again (%r)", self.what, exc, extra={"outage": self.what})
            return False
        self.since = self._clock()
        self._log.warning("%s failed (%r); retrying", self.what, exc, extra={"outage": self.what})
        return True

    def recovered(self) -> float | None:
        """Records a successful attempt; the outage's length in seconds when it ended one (and was logged)."""
        if self.since is None:
            return None
        lasted, failures = self._clock() - self.since, self.failures
        self.since, self.failures = None, 0
        self._log.warning("%s works again after %.1f s (%d failed attempts)", self.what, lasted, failures,
                          extra={"outage": self.what, "outageSeconds": round(lasted, 3)})
        return lasted
